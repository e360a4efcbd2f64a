package kubestore_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/medianet/medianet/internal/kubetest"
	"github.com/medianet/medianet/ipam"
	"github.com/medianet/medianet/ipam/kubestore"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// The sticky scenarios of ipam/etcdstore (sticky_test.go,
// nevertwice_test.go: the ways an address went live twice in issue 18)
// against a real kube-apiserver, each on a network of its own; the part
// that stops the server runs last.
func TestStickyAgainstAPIServer(t *testing.T) {
	srv := kubetest.Start(t)
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, *kubetest.Server)
	}{
		{"AcrossNodes", testStickyAcrossNodes},
		{"MoveRaces", testStickyMoveRaces},
		{"MovedAddressGivenBackWhenUnused", testMovedGivenBack},
		{"NeverTwiceOwnHoldTakenBack", testOwnHoldTakenBack},
		{"NeverTwiceBlockSize32", testBlockSize32},
		{"NeverTwiceKilledAfterMove", testKilledAfterMove},
		{"NeverTwiceAbortLeavesNothing", testAbortLeavesNothing},
		{"SettleDueExpiresWithoutSync", testSettleDue},
		{"NeverTwiceUnadoptedRecord", testUnadoptedRecord},
		{"ForcedReclaimKeepsMovedAddress", testForcedReclaim},
		{"SchemaAndRBAC", testStickySchema},
		{"ServerHungThenKilledDuringResume", testResumeServerDown},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, srv) })
	}
}

// stickyNode is one node of a sticky kubernetes network, with a clock.
type stickyNode struct {
	name, net string
	c         *kubestore.Client
	st        ipam.Store
	src       *kubestore.Source
	a         *ipam.Allocator
	now       time.Time
}

func newStickyNodes(t *testing.T, srv *kubetest.Server, network, subnet string, blockSize int, names ...string) []*stickyNode {
	t.Helper()
	var out []*stickyNode
	for _, name := range names {
		cfg := netConfig(network, subnet, blockSize, name)
		cfg.Sticky = 30 * time.Minute
		c := agentClient(t, srv, func(k *kubestore.Config) { k.RequestTimeout = 10 * time.Second })
		st := openStore(t)
		a, src := newAllocator(t, c, cfg, st)
		n := &stickyNode{name: name, net: network, c: c, st: st, src: src, a: a, now: time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)}
		a.Now = func() time.Time { return n.now }
		out = append(out, n)
	}
	return out
}

func (n *stickyNode) add(t *testing.T, cid, workload string) ipam.Allocation {
	t.Helper()
	got, err := n.a.Allocate(context.Background(), ipam.Request{ContainerID: cid, IfName: "eth0", Workload: workload})
	if err != nil {
		t.Fatalf("%s: ADD %s (%s): %v", n.name, cid, workload, err)
	}
	return got
}

func (n *stickyNode) del(t *testing.T, cid string) {
	t.Helper()
	if _, _, err := n.a.Release(context.Background(), cid, "eth0"); err != nil {
		t.Fatalf("%s: DEL %s: %v", n.name, cid, err)
	}
}

func (n *stickyNode) sync(t *testing.T) {
	t.Helper()
	if _, err := n.src.SyncIdle(context.Background(), n.st, n.now); err != nil {
		t.Fatalf("%s: sync: %v", n.name, err)
	}
}

// used reports whether ip is marked used in n's store (by anyone).
func (n *stickyNode) used(t *testing.T, ip netip.Addr) bool {
	t.Helper()
	used := false
	err := n.st.View(context.Background(), func(tx ipam.Tx) error {
		b, ok, err := tx.BlockContaining(n.net, ip)
		if ok {
			off, _ := b.Offset(ip)
			used = b.IsUsed(off)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return used
}

// live returns the live (non-reservation) holders of ip on n.
func (n *stickyNode) live(t *testing.T, ip netip.Addr) []string {
	t.Helper()
	var out []string
	err := n.st.View(context.Background(), func(tx ipam.Tx) error {
		return tx.ForEachAllocation(n.net, func(a ipam.Allocation) error {
			if slices.Contains(a.IPs, ip) && !a.IsReservation() && !a.IsHold() {
				out = append(out, n.name+":"+a.ContainerID)
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func liveTwice(t *testing.T, ip netip.Addr, nodes ...*stickyNode) {
	t.Helper()
	var holders []string
	for _, n := range nodes {
		holders = append(holders, n.live(t, ip)...)
	}
	if len(holders) > 1 {
		t.Fatalf("%s is live on %d containers: %v", ip, len(holders), holders)
	}
}

// allocations lists n's allocations of its network.
func (n *stickyNode) allocations(t *testing.T) []string {
	t.Helper()
	al, err := ipam.List(context.Background(), n.st, n.net)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, x := range al {
		out = append(out, fmt.Sprintf("%s/%s %v", x.ContainerID, x.IfName, x.IPs))
	}
	return out
}

var stickiesGVR = schema.GroupVersionResource{Group: kubestore.Group, Version: kubestore.Version, Resource: "ipamstickies"}

// record returns the spec of workload's IPAMSticky on eth0 of network as
// the admin reads it (nil: none).
func record(t *testing.T, srv *kubetest.Server, network, workload string) map[string]any {
	t.Helper()
	name := kubestore.StickyName(network, workload, "eth0")
	o, err := adminDynamic(t, srv).Resource(stickiesGVR).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		t.Fatalf("read IPAMSticky %s: %v", name, err)
	}
	spec, _, _ := unstructured.NestedMap(o.Object, "spec")
	return spec
}

// decision is what a record decides, without its write count.
func decision(spec map[string]any) string {
	if spec == nil {
		return "none"
	}
	return fmt.Sprintf("%v %v %v %v", spec["node"], spec["state"], spec["ips"], spec["until"])
}

// testStickyAcrossNodes replays a StatefulSet pod moving a -> b -> c: it
// keeps its address on each node; the node it left keeps the address
// reserved while another uses it; a third pod cannot take it; once the
// sticky period runs out after its last delete, the address returns to
// the node whose block holds it, and no record is left.
func testStickyAcrossNodes(t *testing.T, srv *kubetest.Server) {
	nodes := newStickyNodes(t, srv, "st-across", "10.70.0.0/24", 28, "a", "b", "c")
	a, b, c := nodes[0], nodes[1], nodes[2]
	x := a.add(t, "a-sandbox", "media/jvb-3").IPs[0]
	a.sync(t)
	a.del(t, "a-sandbox")
	if got := decision(record(t, srv, "st-across", "media/jvb-3")); got == "none" {
		t.Fatalf("no IPAMSticky after DEL on a")
	}
	if got := b.add(t, "b-sandbox", "media/jvb-3").IPs[0]; got != x {
		t.Fatalf("jvb-3 on node b got %s, want its address %s", got, x)
	}
	if spec := record(t, srv, "st-across", "media/jvb-3"); spec["node"] != "b" || spec["state"] != "live" {
		t.Fatalf("IPAMSticky after the move: %s, want live on b", decision(spec))
	}
	a.sync(t)
	if !a.used(t, x) {
		t.Fatalf("node a freed %s while node b uses it", x)
	}
	for i := range 10 {
		if got := a.add(t, fmt.Sprintf("a-other-%d", i), "").IPs[0]; got == x {
			t.Fatalf("node a handed %s to another pod while b uses it", x)
		}
	}
	_, err := b.a.Allocate(context.Background(), ipam.Request{ContainerID: "intruder", IfName: "eth0", IPs: []netip.Addr{x}})
	if !errors.Is(err, ipam.ErrTaken) {
		t.Errorf("a third pod requesting %s on b: %v, want ErrTaken", x, err)
	}
	b.sync(t)
	b.del(t, "b-sandbox")
	b.sync(t)
	if got := c.add(t, "c-sandbox", "media/jvb-3").IPs[0]; got != x {
		t.Fatalf("jvb-3 on node c got %s, want %s", got, x)
	}
	b.sync(t)
	a.sync(t)
	if !a.used(t, x) || b.used(t, x) {
		t.Fatalf("after the move to c: used on a %t (want true), on b %t (want false)", a.used(t, x), b.used(t, x))
	}
	c.sync(t)
	c.del(t, "c-sandbox")
	c.sync(t)
	c.now = c.now.Add(31 * time.Minute)
	c.sync(t)
	if c.used(t, x) {
		t.Errorf("node c still holds %s after the sticky period", x)
	}
	a.sync(t)
	if a.used(t, x) {
		t.Errorf("node a still reserves %s after c gave it back", x)
	}
	if got := decision(record(t, srv, "st-across", "media/jvb-3")); got != "none" {
		t.Errorf("IPAMSticky after the period: %s, want none", got)
	}
}

// testStickyMoveRaces: the two races of a move, many times. (1) Node a
// expires the hold while node b starts the workload: either a frees the
// address and b gets a new one, or b gets it and a keeps it reserved.
// (2) The workload starts on b and c at once: at most one gets it.
func testStickyMoveRaces(t *testing.T, srv *kubetest.Server) {
	nodes := newStickyNodes(t, srv, "st-races", "10.70.16.0/20", 28, "a", "b", "c")
	a, b, c := nodes[0], nodes[1], nodes[2]
	ctx := context.Background()
	moves := 0
	defer func() { t.Logf("%d of 12 races ended with the address moved", moves) }()
	for i := range 12 {
		w := fmt.Sprintf("media/jvb-%d", i)
		x := a.add(t, "a-"+w, w).IPs[0]
		a.sync(t)
		a.del(t, "a-"+w)
		a.sync(t)
		got := map[string]netip.Addr{}
		var mu sync.Mutex
		var wg sync.WaitGroup
		racers := []*stickyNode{b, c}
		if i%2 == 0 {
			racers = []*stickyNode{b}
			a.now = a.now.Add(31 * time.Minute)
			wg.Go(func() {
				if _, err := a.src.SyncIdle(ctx, a.st, a.now); err != nil {
					t.Errorf("a's sync: %v", err)
				}
			})
		}
		for _, n := range racers {
			wg.Go(func() {
				al, err := n.a.Allocate(ctx, ipam.Request{ContainerID: n.name + "-" + w, IfName: "eth0", Workload: w})
				if err != nil {
					t.Errorf("%s: %v", n.name, err)
					return
				}
				mu.Lock()
				got[n.name] = al.IPs[0]
				mu.Unlock()
			})
		}
		wg.Wait()
		a.sync(t)
		holders := 0
		for _, ip := range got {
			if ip == x {
				holders++
			}
		}
		if holders > 1 {
			t.Fatalf("%s: %s given to %d nodes at once: %v", w, x, holders, got)
		}
		if holders == 1 && !a.used(t, x) {
			t.Fatalf("%s: %s moved to another node, and node a freed it too", w, x)
		}
		moves += holders
		for _, n := range racers {
			n.del(t, n.name+"-"+w)
		}
	}
}

// testMovedGivenBack: the workload's address x moved from a to b runs
// beside a second sandbox of it on b (address y). When both go, the hold
// is x, y is freed, and once the period ends x leaves b (its bound block
// goes) and a frees its reservation.
func testMovedGivenBack(t *testing.T, srv *kubetest.Server) {
	nodes := newStickyNodes(t, srv, "st-given", "10.70.32.0/24", 28, "a", "b")
	a, b := nodes[0], nodes[1]
	x := a.add(t, "a-sandbox", "media/jvb-0").IPs[0]
	a.del(t, "a-sandbox")
	if got := b.add(t, "b-1", "media/jvb-0").IPs[0]; got != x {
		t.Fatalf("jvb-0 on b got %s, want %s moved from a", got, x)
	}
	y := b.add(t, "b-2", "media/jvb-0").IPs[0]
	if y == x {
		t.Fatalf("a second sandbox of jvb-0 got %s, which the first one has", x)
	}
	b.sync(t)
	a.sync(t)
	b.del(t, "b-2")
	b.del(t, "b-1")
	for _, n := range []*stickyNode{b, a, b, a} {
		n.sync(t)
	}
	if !b.used(t, x) || b.used(t, y) || !a.used(t, x) {
		t.Fatalf("after both DELs: b uses x %t (want true), y %t (want false); a reserves x %t (want true)", b.used(t, x), b.used(t, y), a.used(t, x))
	}
	b.now = b.now.Add(31 * time.Minute)
	b.sync(t)
	a.sync(t)
	if b.used(t, x) || a.used(t, x) {
		t.Errorf("after the period: b uses %s %t, a reserves it %t; want neither", x, b.used(t, x), a.used(t, x))
	}
	if left := b.allocations(t); len(left) > 0 {
		t.Errorf("node b keeps %v after the drain", left)
	}
}
