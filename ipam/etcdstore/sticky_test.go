package etcdstore_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/medianet/medianet/internal/etcdtest"
	"github.com/medianet/medianet/internal/ipamtest"
	"github.com/medianet/medianet/ipam"
	"github.com/medianet/medianet/ipam/etcdstore"
)

// stickyNode is one node of a sticky etcd network, with a clock.
type stickyNode struct {
	name string
	st   ipam.Store
	src  *etcdstore.Source
	a    *ipam.Allocator
	now  time.Time
}

func newStickyNodes(t *testing.T, srv *etcdtest.Server, subnet string, names ...string) []*stickyNode {
	t.Helper()
	return newStickyNodesSized(t, srv, subnet, 28, names...)
}

// newStickyNodesSized is newStickyNodes with blocks of blockSize.
func newStickyNodesSized(t *testing.T, srv *etcdtest.Server, subnet string, blockSize int, names ...string) []*stickyNode {
	t.Helper()
	var out []*stickyNode
	for _, name := range names {
		cfg := ipam.Config{Network: "media", Node: name, BlockSize: blockSize, Sticky: 30 * time.Minute,
			Subnets: []ipam.Subnet{{Prefix: netip.MustParsePrefix(subnet)}}}
		st := ipamtest.Store(t)
		src, err := etcdstore.NewSource(clientFor(t, srv, nil), &cfg, st)
		if err != nil {
			t.Fatal(err)
		}
		a, err := ipam.NewAllocator(cfg, st, src)
		if err != nil {
			t.Fatal(err)
		}
		n := &stickyNode{name: name, st: st, src: src, a: a, now: time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)}
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
		b, ok, err := tx.BlockContaining("media", ip)
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

// TestStickyAcrossNodes replays a StatefulSet pod (media/jvb-3) moving
// a -> b -> c: it keeps its address on each node; the node it left keeps
// the address reserved while another uses it; a third pod cannot take it;
// once the sticky period runs out after its last delete, the address
// returns to the node whose block holds it.
func TestStickyAcrossNodes(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	nodes := newStickyNodes(t, srv, "10.98.0.0/24", "a", "b", "c")
	a, b, c := nodes[0], nodes[1], nodes[2]
	x := a.add(t, "a-sandbox", "media/jvb-3").IPs[0]
	a.sync(t) // publishes where jvb-3 is
	a.del(t, "a-sandbox")
	a.sync(t)
	if got := b.add(t, "b-sandbox", "media/jvb-3").IPs[0]; got != x {
		t.Fatalf("jvb-3 on node b got %s, want its address %s", got, x)
	}
	a.sync(t) // a sees the move: its hold becomes a reservation for b
	if !a.used(t, x) {
		t.Fatalf("node a freed %s while node b uses it", x)
	}
	for i := range 10 { // a hands out its block's other addresses, never x
		if got := a.add(t, fmt.Sprintf("a-other-%d", i), "").IPs[0]; got == x {
			t.Fatalf("node a handed %s to another pod while b uses it", x)
		}
	}
	// A third pod on b cannot request it.
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
	// jvb-3 goes away for good: its hold on c expires after the period.
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
	for _, n := range nodes {
		if err := n.st.(interface{ Check(context.Context) error }).Check(context.Background()); err != nil {
			t.Errorf("node %s store: %v", n.name, err)
		}
	}
}

// TestStickyMoveRaces: the two races of a move, many times. (1) Node a
// expires jvb's hold while node b starts jvb: either a frees the address
// and b gets a new one, or b gets it and a keeps it reserved; never both.
// (2) jvb is started on b and c at once (a double schedule): at most one
// gets the address.
func TestStickyMoveRaces(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	nodes := newStickyNodes(t, srv, "10.99.0.0/20", "a", "b", "c")
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
		if i%2 == 0 { // race (1): a's expiry against b's start
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

// TestMovedAddressGivenBackWhenUnused: a workload's address x moved from
// a to b runs beside a second sandbox of the workload on b, which got
// another address y. The workload's record names x: when both sandboxes
// are deleted, the workload's hold is x, y is freed, and once the sticky
// period ends x leaves b (its bound block goes) and a frees its
// reservation. Nothing is left on either node (the soak's drain found
// such leftovers with the earlier address marks).
func TestMovedAddressGivenBackWhenUnused(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	nodes := newStickyNodes(t, srv, "10.98.1.0/24", "a", "b")
	a, b := nodes[0], nodes[1]
	x := a.add(t, "a-sandbox", "media/jvb-0").IPs[0]
	a.del(t, "a-sandbox")
	if got := b.add(t, "b-1", "media/jvb-0").IPs[0]; got != x {
		t.Fatalf("jvb-0 on b got %s, want %s moved from a", got, x)
	}
	y := b.add(t, "b-2", "media/jvb-0").IPs[0] // a second sandbox of the workload
	if y == x {
		t.Fatalf("a second sandbox of jvb-0 got %s, which the first one has", x)
	}
	b.sync(t)
	a.sync(t)
	b.del(t, "b-2") // y's hold is not the one the record names: freed
	b.del(t, "b-1") // x is held for jvb-0
	for _, n := range []*stickyNode{b, a, b, a} {
		n.sync(t)
	}
	if !b.used(t, x) || b.used(t, y) || !a.used(t, x) {
		t.Fatalf("after both DELs: b uses x %t (want true), y %t (want false); a reserves x %t (want true)", b.used(t, x), b.used(t, y), a.used(t, x))
	}
	b.now = b.now.Add(31 * time.Minute)
	b.sync(t)
	a.sync(t)
	err := b.st.View(context.Background(), func(tx ipam.Tx) error {
		if blk, ok, err := tx.BlockContaining("media", x); err != nil || ok {
			return errors.Join(err, fmt.Errorf("node b still holds block %s, of an address nobody uses here", blk.Prefix))
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
	if a.used(t, x) {
		t.Errorf("node a still reserves %s, which b gave back", x)
	}
}
