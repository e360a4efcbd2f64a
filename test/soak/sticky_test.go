// Deterministic replays of the sticky-address defects the soak found.
// They run in make test, against the real plugin and
// medianetctl and a real etcd, and fail until the defects are fixed.

package soak

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/medianet/medianet/internal/cnitest"
	"github.com/medianet/medianet/internal/etcdtest"
)

// TestStaleStickyHoldAfterMove replays, step by step, the duplicate the
// soak found (seed 1795986497094759196, step 1587): a sticky pod's
// address goes a -> c -> a; node c, which has not synced since a took the
// address back, still has its hold of it, and the pod starting on c again
// takes that stale hold without asking etcd. Once a's own hold of the pod
// expires, a hands the address to another container: two live containers
// of different workloads hold it. It
// fails until the allocator checks a local hold against etcd's sticky
// record before taking it.
func TestStaleStickyHoldAfterMove(t *testing.T) {
	a, c := stickyNodes(t, "3s", "a", "c")

	x := a.add("s1", jvb0)
	a.del("s1", jvb0) // a holds x for jvb-0
	a.sync()          // and says so in etcd
	if got := c.add("s2", jvb0); got != x {
		t.Fatalf("jvb-0 on c got %s, want its hold %s moved from a", got, x)
	}
	c.del("s2", jvb0) // c holds x (a single-address block)
	c.sync()
	a.sync() // a keeps x reserved while c has it
	if got := a.add("s3", jvb0); got != x {
		t.Fatalf("jvb-0 back on a got %s, want %s moved home", got, x)
	}
	// c has not synced since: its hold of x is stale.
	onC := c.add("s4", jvb0)
	a.del("s3", jvb0)
	a.syncUntilNoHold() // a's hold expires
	a.mustNotHandOut(onC, "jvb-0's sandbox s4 on node c holds it (c took its stale hold)")
}

// TestStaleStickyHoldAfterExpiry is the same move a -> c -> a, in the
// other order: a's hold of the address expires first (its record is
// deleted, the address is free on a), then the pod starts on c again,
// which has not synced since the address went home. No record is left:
// c must still not take its hold, whose address is no longer its own.
func TestStaleStickyHoldAfterExpiry(t *testing.T) {
	a, c := stickyNodes(t, "3s", "a", "c")
	x := a.add("s1", jvb0)
	a.del("s1", jvb0)
	a.sync()
	if got := c.add("s2", jvb0); got != x {
		t.Fatalf("jvb-0 on c got %s, want its hold %s moved from a", got, x)
	}
	c.del("s2", jvb0)
	c.sync()
	a.sync()
	if got := a.add("s3", jvb0); got != x {
		t.Fatalf("jvb-0 back on a got %s, want %s moved home", got, x)
	}
	a.del("s3", jvb0)
	a.syncUntilNoHold() // a's hold expires: record deleted, x free on a
	onC := c.add("s4", jvb0)
	a.mustNotHandOut(onC, "jvb-0's sandbox s4 on node c holds it (c took its stale hold: no record left)")
}

// TestGivenUpHoldRecalledElsewhere replays the other sticky defect the
// soak found (seed 1795987742683004205, step 2230): a node gives a pod's
// hold up (here the pod's new sandbox asks for another address; in the
// soak its old sandbox's DEL ran beside the new one's ADD) and frees the
// address at once, while etcd still records the hold; another node
// recalls the pod's address from that record before the first node's
// sync rewrites it, and the first node hands the same address to a plain
// container. It fails until giving a
// hold up goes through etcd as an expiry does.
func TestGivenUpHoldRecalledElsewhere(t *testing.T) {
	a, b := stickyNodes(t, "1m", "a", "b")

	x := a.add("s1", jvb0)
	a.del("s1", jvb0)
	a.sync() // etcd: jvb-0's hold of x on a
	y := x.Next()
	if got := a.add("s2", jvb0+";IP="+y.String()); got != y {
		t.Fatalf("jvb-0's new sandbox asking for %s got %s", y, got)
	}
	onB := b.add("s3", jvb0) // x, recalled from the hold etcd still records
	a.mustNotHandOut(onB, "jvb-0's sandbox s3 on node b holds it")
}

// jvb0 names the pod of the replays, as kubelet passes it in CNI_ARGS.
const jvb0 = "K8S_POD_NAMESPACE=media;K8S_POD_NAME=jvb-0"

// stickyNode runs the real plugin and medianetctl for one node.
type stickyNode struct {
	t   *testing.T
	net cnitest.IPAMNet
}

// stickyNodes starts an etcd and returns two nodes of a network with
// ipam.sticky set to sticky, whose /27 in /29 blocks fills fast.
func stickyNodes(t *testing.T, sticky, first, second string) (stickyNode, stickyNode) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	ek := map[string]any{"endpoints": srv.Endpoints(), "prefix": "/medianet-sticky-replay", "requestTimeout": "2s"}
	mk := func(name string) stickyNode {
		return stickyNode{t: t, net: cnitest.IPAMNet{Node: name, Dir: t.TempDir(), Name: "media", Subnet: "10.97.0.0/27",
			BlockSize: 29, Etcd: ek, Extra: map[string]any{"sticky": sticky}}}
	}
	return mk(first), mk(second)
}

// mustNotHandOut ADDs plain containers on n until its block is full, and
// fails if one of them gets x (held elsewhere: why).
func (n stickyNode) mustNotHandOut(x netip.Addr, why string) {
	n.t.Helper()
	for i := range 8 {
		got := n.add(fmt.Sprintf("other-%d", i), "")
		if !got.IsValid() {
			return
		}
		if got == x {
			n.t.Fatalf("node %s handed %s to a plain container while %s", n.net.Node, got, why)
		}
	}
}

func (n stickyNode) run(verb, cid, args string) cnitest.Call {
	return cnitest.Exec{Bin: filepath.Join(bins, "medianet-ipam"), Verb: verb, ContainerID: cid, IfName: ifName,
		Netns: missingNetns, Args: args, Path: bins, Conf: n.net.JSON()}.Run()
}

// add returns the address ADD gave, or the zero Addr when the node is
// out of addresses.
func (n stickyNode) add(cid, args string) netip.Addr {
	n.t.Helper()
	out, err := n.run("ADD", cid, args).Outcome()
	if err != nil || (out.Code != 0 && out.Code != 100) || (out.Code == 0 && len(out.IPs) != 1) {
		n.t.Fatalf("ADD %s on %s: %v, code %d %q", cid, n.net.Node, err, out.Code, out.Msg)
	}
	if out.Code != 0 {
		return netip.Addr{}
	}
	return netip.MustParsePrefix(out.IPs[0].Address).Addr()
}

func (n stickyNode) del(cid, args string) {
	n.t.Helper()
	if c := n.run("DEL", cid, args); c.Exit != 0 {
		n.t.Fatalf("DEL %s on %s: %s", cid, n.net.Node, c)
	}
}

func (n stickyNode) sync() {
	n.t.Helper()
	f := filepath.Join(n.net.Dir, "media.conf")
	if err := os.WriteFile(f, n.net.JSON(), 0o600); err != nil {
		n.t.Fatal(err)
	}
	out, err := exec.Command(filepath.Join(bins, "medianetctl"), "--data-dir", n.net.Dir, "ipam", "sync", f).CombinedOutput()
	if err != nil {
		n.t.Fatalf("sync on %s: %v: %s", n.net.Node, err, out)
	}
}

// syncUntilNoHold syncs n (its node agent's work) until it keeps no
// sticky hold: the condition the replays wait for, instead of sleeping
// through the sticky period and hoping. Bounded: 30 s.
func (n stickyNode) syncUntilNoHold() {
	n.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		n.sync()
		out, err := exec.Command(filepath.Join(bins, "medianetctl"), "--data-dir", n.net.Dir, "ipam", "list", "--json").Output()
		if err != nil {
			n.t.Fatalf("list on %s: %v", n.net.Node, err)
		}
		var entries []struct {
			HeldUntil time.Time `json:"heldUntil"`
		}
		if err := json.Unmarshal(out, &entries); err != nil {
			n.t.Fatalf("list on %s: %v: %s", n.net.Node, err, out)
		}
		if !slices.ContainsFunc(entries, func(e struct {
			HeldUntil time.Time `json:"heldUntil"`
		}) bool {
			return !e.HeldUntil.IsZero()
		}) {
			return
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("node %s still keeps a sticky hold 30 s on: %s", n.net.Node, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
