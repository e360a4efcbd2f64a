package etcd

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/medianet/medianet/internal/cnitest"
	"github.com/medianet/medianet/internal/etcdtest"
	"github.com/medianet/medianet/internal/nstest"
	"github.com/medianet/medianet/ipam/etcdstore"
)

// netConf is one network of a simulated node, run through the real
// medianet-ipam binary (which runs medianet-ipam-etcd for ipam.etcd).
type netConf struct {
	node, dir, name, subnet string
	blockSize               int
	etcd                    map[string]any // nil: static, the whole subnet
	extra                   map[string]any // more ipam keys
	ns                      string         // network namespace the plugin runs in ("": the test's)
}

func (c netConf) json() []byte {
	return cnitest.IPAMNet{Node: c.node, Dir: c.dir, Name: c.name, Subnet: c.subnet, BlockSize: c.blockSize,
		Etcd: c.etcd, Extra: c.extra}.JSON()
}

// call runs one verb and returns its outcome and when it ended.
type call struct {
	out cniOutcome
	end time.Time
}

func (c netConf) exec(t testing.TB, verb, cid string) call {
	t.Helper()
	return c.execConf(t, verb, cid, c.json())
}

func (c netConf) execConf(t testing.TB, verb, cid string, conf []byte) call {
	t.Helper()
	return c.execArgs(t, verb, cid, "", conf)
}

// execArgs runs verb with CNI_ARGS args (K8S_POD_NAME=...; as kubelet
// passes them).
func (c netConf) execArgs(t testing.TB, verb, cid, args string, conf []byte) call {
	t.Helper()
	out := cnitest.Exec{Bin: binary("medianet-ipam"), NS: c.ns, Verb: verb, ContainerID: cid, IfName: "net1",
		Netns: "/var/run/netns/medianet-etcd-none", Args: args, Path: bins, Conf: conf}.Run()
	r := call{end: time.Now()}
	if out.Stdout != "" {
		if err := json.Unmarshal([]byte(out.Stdout), &r.out); err != nil {
			t.Errorf("%s %s on %s: stdout is not JSON: %v: %q", verb, cid, c.name, err, out.Stdout)
		}
	}
	return r
}

func (c netConf) mustAdd(t testing.TB, cid string) netip.Addr {
	t.Helper()
	r := c.exec(t, "ADD", cid)
	if r.out.Code != 0 || len(r.out.IPs) != 1 {
		t.Fatalf("ADD %s on %s/%s: code %d %q", cid, c.node, c.name, r.out.Code, r.out.Msg)
	}
	return netip.MustParsePrefix(r.out.IPs[0].Address).Addr()
}

// TestNoNetworkCallUnderTheStoreLock: a node with three networks in one
// store. One etcd network needs a new block while etcd is blackholed
// (packets dropped inside etcd's namespace, not a stopped process): its
// ADD waits for its request timeout. Meanwhile ADD on a roomy etcd
// network, ADD on a static network and a DEL that empties a block all
// complete before it returns: none waits behind the etcd round trip.
func TestNoNetworkCallUnderTheStoreLock(t *testing.T) {
	srv := etcdtest.StartInNS(t, etcdtest.Options{})
	dir := t.TempDir()
	ek := map[string]any{"endpoints": srv.Endpoints(), "prefix": "/medianet-fault", "requestTimeout": "4s"}
	roomy := netConf{node: "a", dir: dir, name: "roomy", subnet: "10.90.0.0/24", blockSize: 26, etcd: ek}
	full := netConf{node: "a", dir: dir, name: "full", subnet: "10.91.0.0/24", blockSize: 30, etcd: ek}
	static := netConf{node: "a", dir: dir, name: "static", subnet: "10.92.0.0/24"}
	roomy.mustAdd(t, "r0")
	static.mustAdd(t, "s0")
	// A /30 block holds 4 addresses; the subnet's network address is
	// reserved in the first. Fill the node's block.
	for i := 0; ; i++ {
		a := full.mustAdd(t, fmt.Sprintf("f%d", i))
		if a.As4()[3]%4 == 3 {
			break
		}
	}
	if err := srv.Blackhole(); err != nil {
		t.Fatal(err)
	}
	defer srv.Heal()
	before, err := srv.Dropped()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	waiting := make(chan call, 1)
	go func() { waiting <- full.exec(t, "ADD", "f-claims") }()
	// The others start once the claim's packets reach the blackhole: it
	// then holds the claim lock and waits on etcd.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.WaitDropped(ctx, before); err != nil {
		t.Fatal(err)
	}
	others := map[string]call{
		"ADD on the roomy etcd network": roomy.exec(t, "ADD", "r1"),
		"ADD on the static network":     static.exec(t, "ADD", "s1"),
		"DEL emptying the roomy block":  roomy.exec(t, "DEL", "r0"),
		"DEL on the static network":     static.exec(t, "DEL", "s0"),
	}
	got := <-waiting
	if got.out.Code != 11 || !strings.Contains(got.out.Msg, srv.Endpoints()[0]) {
		t.Errorf("ADD needing a claim from a blackholed etcd: code %d %q, want 11 naming %s", got.out.Code, got.out.Msg, srv.Endpoints()[0])
	}
	for what, c := range others {
		if c.out.Code != 0 {
			t.Errorf("%s while another network waits on etcd: code %d %q", what, c.out.Code, c.out.Msg)
		}
		if !c.end.Before(got.end) {
			t.Errorf("%s ended %v after start, after the blackholed claim (%v): it waited behind it",
				what, c.end.Sub(start), got.end.Sub(start))
		}
	}
	// STATUS of the full network asks etcd whether a block is free: it
	// fails try-again-later, and writes nothing.
	if st := full.exec(t, "STATUS", ""); st.out.Code == 0 {
		t.Errorf("STATUS of the full network with etcd blackholed succeeded")
	}
}

// TestForcedReclaimOfAPartitionedNode: node a holds a block with live
// addresses and publishes its usage (a sync, as its node agent or GC
// does). Then a alone is cut off from etcd (its packets dropped in etcd's
// namespace; a's sync now fails), an operator reclaims its blocks with
// --force from elsewhere, and node b, out of room, takes the reclaimed
// block over. b never hands out a's published addresses. When a is
// reachable again, its next sync finds the block lost: STATUS fails with
// 50 naming the block and b, `medianetctl ipam check` lists a's containers
// in it, a hands out nothing from it. No address is held twice at any
// step. Once a's containers are gone, b gets their addresses back.
func TestForcedReclaimOfAPartitionedNode(t *testing.T) {
	nstest.SkipUnlessRoot(t)
	srv := etcdtest.StartInNS(t, etcdtest.Options{})
	aNS := nstest.NewNS(t, "mna")
	aEndpoint, cutA := srv.Link(t, aNS)
	ek := func(ep string) map[string]any {
		return map[string]any{"endpoints": []string{ep}, "prefix": "/medianet-part", "requestTimeout": "1s"}
	}
	// 10.93.0.0/27 in /29 blocks: four blocks of eight addresses; the
	// gateway .30 and broadcast .31 in the last, the network .0 in the
	// first.
	gw := map[string]any{"gateway": "10.93.0.30"}
	a := netConf{node: "a", dir: t.TempDir(), name: "media", subnet: "10.93.0.0/27", blockSize: 29, etcd: ek(aEndpoint), ns: aNS.Name, extra: gw}
	b := netConf{node: "b", dir: t.TempDir(), name: "media", subnet: "10.93.0.0/27", blockSize: 29, etcd: ek(srv.Endpoints()[0]), extra: gw}
	reserved := map[netip.Addr]bool{netip.MustParseAddr("10.93.0.0"): true, netip.MustParseAddr("10.93.0.30"): true, netip.MustParseAddr("10.93.0.31"): true}
	holders := map[netip.Addr]string{}
	hold := func(n netConf, cid string) netip.Addr {
		t.Helper()
		ip := n.mustAdd(t, cid)
		if prev, dup := holders[ip]; dup {
			t.Fatalf("%s handed to %s while %s holds it", ip, n.node+"/"+cid, prev)
		}
		holders[ip] = n.node + "/" + cid
		return ip
	}
	aIPs := []netip.Addr{hold(a, "a0"), hold(a, "a1")}
	aBlock, _ := aIPs[0].Prefix(29)
	aConf := writeConf(t, a)
	ctlIn(t, aNS.Name, 0, "--data-dir", a.dir, "ipam", "sync", aConf)

	if err := cutA(true); err != nil {
		t.Fatal(err)
	}
	if out := ctlIn(t, aNS.Name, 1, "--data-dir", a.dir, "ipam", "sync", aConf); !strings.Contains(out, aEndpoint) {
		t.Errorf("a's sync while cut off: %q, want a failure naming %s", out, aEndpoint)
	}
	out := ctl(t, "ipam", "reclaim", "--node", "a", "--force", "--etcd-endpoints", srv.Endpoints()[0], "--etcd-prefix", "/medianet-part")
	if !strings.Contains(out, aBlock.String()) {
		t.Fatalf("reclaim --force output %q does not name %s", out, aBlock)
	}
	// b fills the subnet: three free blocks, then a's reclaimed one.
	for i := 0; ; i++ {
		r := b.exec(t, "ADD", fmt.Sprintf("b%d", i))
		if r.out.Code != 0 {
			if r.out.Code != 100 {
				t.Fatalf("b's ADD %d: code %d %q, want success or 100 (full)", i, r.out.Code, r.out.Msg)
			}
			break
		}
		ip := netip.MustParsePrefix(r.out.IPs[0].Address).Addr()
		if prev, dup := holders[ip]; dup {
			t.Fatalf("b handed out %s, which %s holds", ip, prev)
		}
		holders[ip] = fmt.Sprintf("b/b%d", i)
		if i > 40 {
			t.Fatal("b never filled the subnet")
		}
	}
	// b took the reclaimed block and handed out all of it but a's
	// published addresses (and the config's reserved ones).
	want := 0
	for ip := aBlock.Addr(); aBlock.Contains(ip); ip = ip.Next() {
		if !reserved[ip] && !slices.Contains(aIPs, ip) {
			want++
		}
	}
	bInA := 0
	for ip, who := range holders {
		if aBlock.Contains(ip) && strings.HasPrefix(who, "b/") {
			bInA++
		}
	}
	if bInA != want {
		t.Errorf("b holds %d addresses of the reclaimed block %s, want the %d a did not publish", bInA, aBlock, want)
	}
	// a is reachable again: its sync finds the block lost.
	if err := cutA(false); err != nil {
		t.Fatal(err)
	}
	ctlIn(t, aNS.Name, 0, "--data-dir", a.dir, "ipam", "sync", aConf)
	st := a.exec(t, "STATUS", "")
	if st.out.Code != 50 || !strings.Contains(st.out.Msg, aBlock.String()) || !strings.Contains(st.out.Msg, `"b"`) {
		t.Errorf("STATUS of a after the loss: code %d %q, want 50 naming %s and node b", st.out.Code, st.out.Msg, aBlock)
	}
	check := ctlExit(t, 3, "--data-dir", a.dir, "ipam", "check")
	for _, cid := range []string{"a0", "a1"} {
		if !strings.Contains(check, "in-lost-block") || !strings.Contains(check, cid) {
			t.Errorf("check after the loss does not list %s in the lost block: %q", cid, check)
		}
	}
	if r := a.exec(t, "ADD", "a2"); r.out.Code == 0 {
		ip := netip.MustParsePrefix(r.out.IPs[0].Address).Addr()
		if prev, dup := holders[ip]; dup || aBlock.Contains(ip) {
			t.Errorf("a handed out %s after the loss (held by %q)", ip, prev)
		}
	}
	// a's pods go; a says so; b's reservations for them are released.
	for _, cid := range []string{"a0", "a1"} {
		if r := a.exec(t, "DEL", cid); r.out.Code != 0 {
			t.Fatalf("DEL %s: %d %q", cid, r.out.Code, r.out.Msg)
		}
	}
	ctlIn(t, aNS.Name, 0, "--data-dir", a.dir, "ipam", "sync", aConf)
	out = ctl(t, "--data-dir", b.dir, "ipam", "sync", writeConf(t, b))
	if !strings.Contains(out, "2 foreign released") {
		t.Errorf("b's sync after a released its addresses: %q, want 2 foreign released", out)
	}
	if r := a.exec(t, "STATUS", ""); r.out.Code == 50 && strings.Contains(r.out.Msg, aBlock.String()) {
		t.Errorf("a's STATUS still names %s once it dropped it: %q", aBlock, r.out.Msg)
	}
}

func writeConf(t *testing.T, c netConf) string {
	t.Helper()
	f := t.TempDir() + "/" + c.node + ".conf"
	if err := os.WriteFile(f, c.json(), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// ctl runs medianetctl and fails the test unless it exits 0.
func ctl(t *testing.T, args ...string) string { t.Helper(); return ctlIn(t, "", 0, args...) }

func ctlExit(t *testing.T, want int, args ...string) string {
	t.Helper()
	return ctlIn(t, "", want, args...)
}

// ctlIn runs medianetctl in network namespace ns and fails the test
// unless it exits with want.
func ctlIn(t *testing.T, ns string, want int, args ...string) string {
	t.Helper()
	out, err := cnitest.InNS(ns, binary("medianetctl"), args...).CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	if code != want {
		t.Fatalf("medianetctl %v: exit %d, want %d: %s", args, code, want, out)
	}
	return string(out)
}

// TestStatusNeverClaims: STATUS on a node whose held block is full asks
// etcd whether a block could be had, and claims nothing (it used to claim
// a block on every call).
func TestStatusNeverClaims(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	ek := map[string]any{"endpoints": srv.Endpoints(), "prefix": "/medianet-status"}
	n := netConf{node: "a", dir: t.TempDir(), name: "media", subnet: "10.89.0.0/24", blockSize: 30, etcd: ek}
	for i := 0; ; i++ { // fill the first block (.0 is the network address)
		if a := n.mustAdd(t, fmt.Sprintf("c%d", i)); a.As4()[3]%4 == 3 {
			break
		}
	}
	cli, err := etcdstore.New(etcdstore.Config{Endpoints: srv.Endpoints(), Prefix: "/medianet-status"})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	claims := func() int {
		cs, err := cli.Claims(context.Background(), "media", "")
		if err != nil {
			t.Fatal(err)
		}
		return len(cs)
	}
	before := claims()
	for range 3 {
		if st := n.exec(t, "STATUS", ""); st.out.Code != 0 {
			t.Fatalf("STATUS with a full block and free ones in etcd: %d %q", st.out.Code, st.out.Msg)
		}
	}
	if got := claims(); got != before {
		t.Errorf("claims after three STATUS calls: %d, want %d (STATUS must not claim)", got, before)
	}
}
