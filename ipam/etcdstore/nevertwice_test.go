package etcdstore_test

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/medianet/medianet/internal/etcdtest"
	"github.com/medianet/medianet/ipam"
)

// The cases of issue 18 ("Never live twice") that put one address on two
// live containers, or leaked one, with the sticky design before the
// workload's record became the one authority. Each failed on the commit
// before that change (6fde986).

// live returns the live (non-reservation) holders of ip on n.
func (n *stickyNode) live(t *testing.T, ip netip.Addr) []string {
	t.Helper()
	var out []string
	err := n.st.View(context.Background(), func(tx ipam.Tx) error {
		return tx.ForEachAllocation("media", func(a ipam.Allocation) error {
			for _, x := range a.IPs {
				if x == ip && !a.IsReservation() {
					out = append(out, n.name+":"+a.ContainerID)
				}
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

// Case 1: a node takes its own hold back without asking etcd; before its
// next sync the same workload starts on another node (a partitioned or
// evicted node), which moves the address to itself. Both were live.
func TestNeverTwiceOwnHoldTakenBack(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	nodes := newStickyNodes(t, srv, "10.97.0.0/24", "a", "b")
	a, b := nodes[0], nodes[1]
	x := a.add(t, "a-1", "media/jvb-0").IPs[0]
	a.del(t, "a-1")
	a.sync(t) // the hold is published (the DEL publishes it now; the agent's sync did before)
	if got := a.add(t, "a-2", "media/jvb-0").IPs[0]; got != x {
		t.Fatalf("jvb-0 back on a got %s, want its address %s", got, x)
	}
	// No sync of a: jvb-0 starts on b too.
	b.add(t, "b-1", "media/jvb-0")
	liveTwice(t, x, a, b)
	a.sync(t)
	b.sync(t)
	liveTwice(t, x, a, b)
}

// Case 2: with blockSize 32, a node's own claimed /32 was taken for an
// address moved here (inferred from the block's size), dropped from the
// store while its claim stayed in etcd, adopted again at the next claim
// and handed to a new pod while the workload used it on another node.
func TestNeverTwiceBlockSize32(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	nodes := newStickyNodesSized(t, srv, "10.97.1.0/27", 32, "a", "b")
	a, b := nodes[0], nodes[1]
	x := a.add(t, "a-1", "media/jvb-0").IPs[0]
	a.del(t, "a-1")
	a.sync(t)
	if got := b.add(t, "b-1", "media/jvb-0").IPs[0]; got != x {
		t.Fatalf("jvb-0 on b got %s, want its address %s", got, x)
	}
	for range 3 {
		a.sync(t)
		b.sync(t)
	}
	for i := range 12 {
		_, err := a.a.Allocate(context.Background(), ipam.Request{ContainerID: fmt.Sprintf("a-pod-%d", i), IfName: "eth0"})
		if err != nil {
			break // the subnet is small: exhaustion is fine
		}
		liveTwice(t, x, a, b)
		a.sync(t)
	}
	liveTwice(t, x, a, b)
}

// Case 3: an ADD killed after the etcd transaction that moved the address
// here, before the store adopted it. The home node kept its reservation
// for ever. Now the record is rolled forward into a hold on the node it
// names, which expires as any hold: both nodes end empty.
func TestNeverTwiceKilledAfterMove(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	nodes := newStickyNodes(t, srv, "10.97.2.0/24", "a", "b")
	a, b := nodes[0], nodes[1]
	x := a.add(t, "a-1", "media/jvb-0").IPs[0]
	a.del(t, "a-1")
	// b's ADD dies right after its transaction in etcd: the decision is
	// made, nothing local follows.
	r, err := b.src.Resume(context.Background(), "media/jvb-0", "eth0", nil, b.now)
	if err != nil || len(r.IPs) != 1 || r.IPs[0] != x || !r.Moved {
		t.Fatalf("move of jvb-0 to b: %+v, %v; want %s moved", r, err, x)
	}
	for range 2 {
		a.sync(t)
		b.sync(t)
	}
	if !a.used(t, x) || !b.used(t, x) {
		t.Fatalf("after the move: a reserves %s %t (want true), b holds it %t (want true)", x, a.used(t, x), b.used(t, x))
	}
	// The workload comes back to b within the period: it gets x.
	if got := b.add(t, "b-1", "media/jvb-0").IPs[0]; got != x {
		t.Fatalf("jvb-0 on b got %s, want %s", got, x)
	}
	b.del(t, "b-1")
	b.now = b.now.Add(31 * time.Minute)
	a.now = b.now
	for range 2 {
		b.sync(t)
		a.sync(t)
	}
	for _, n := range nodes {
		if n.used(t, x) {
			t.Errorf("node %s still marks %s used after the period", n.name, x)
		}
		if left := allocations(t, n); len(left) > 0 {
			t.Errorf("node %s keeps %v after the drain", n.name, left)
		}
	}
}

// Case 4: a failed ADD (the link could not be configured) rolled back
// through Release, which on a sticky network left a hold for a workload
// that never ran. Abort leaves nothing; and a hold the ADD took goes back
// as it was.
func TestNeverTwiceAbortLeavesNothing(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	nodes := newStickyNodes(t, srv, "10.97.3.0/24", "a", "b")
	a, b := nodes[0], nodes[1]
	ctx := context.Background()
	a.add(t, "a-1", "media/new")
	if err := a.a.Abort(ctx, "a-1", "eth0"); err != nil {
		t.Fatal(err)
	}
	if left := allocations(t, a); len(left) > 0 {
		t.Fatalf("a failed ADD left %v", left)
	}
	x := a.add(t, "a-2", "media/jvb-0").IPs[0]
	a.del(t, "a-2")
	if got := a.add(t, "a-3", "media/jvb-0").IPs[0]; got != x {
		t.Fatalf("jvb-0 back on a got %s, want %s", got, x)
	}
	if err := a.a.Abort(ctx, "a-3", "eth0"); err != nil {
		t.Fatal(err)
	}
	// The hold is back, published: jvb-0 starting on b gets x.
	if got := b.add(t, "b-1", "media/jvb-0").IPs[0]; got != x {
		t.Fatalf("jvb-0 on b after a's failed ADD got %s, want %s", got, x)
	}
	a.sync(t)
	liveTwice(t, x, a, b)
}

// allocations lists n's allocations of the network.
func allocations(t *testing.T, n *stickyNode) []string {
	t.Helper()
	al, err := ipam.List(context.Background(), n.st, "media")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, x := range al {
		out = append(out, fmt.Sprintf("%s/%s %v", x.ContainerID, x.IfName, x.IPs))
	}
	return out
}

// Case 5: holds expire on the node that keeps them without a sync from a
// node agent or a GC: the plugins' ADD and DEL settle holds whose time is
// up (SettleDue), and nothing is due costs no etcd request.
func TestSettleDueExpiresWithoutSync(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	nodes := newStickyNodes(t, srv, "10.97.4.0/24", "a")
	a := nodes[0]
	ctx := context.Background()
	x := a.add(t, "a-1", "media/jvb-0").IPs[0]
	a.del(t, "a-1")
	if err := a.src.SettleDue(ctx, a.st, a.now); err != nil {
		t.Fatal(err)
	}
	if !a.used(t, x) {
		t.Fatalf("%s freed before its sticky period ended", x)
	}
	a.now = a.now.Add(31 * time.Minute)
	if err := a.src.SettleDue(ctx, a.st, a.now); err != nil {
		t.Fatal(err)
	}
	if a.used(t, x) {
		t.Fatalf("%s still held after the period and SettleDue", x)
	}
	cli := clientFor(t, srv, nil)
	if v, err := cli.RawGet(ctx, "/medianet/networks/media/sticky/media/jvb-0/eth0"); err != nil || v != "" {
		t.Errorf("jvb-0's record after expiry: %q, %v; want none", v, err)
	}
}

// An ADD that recorded its workload live here and then did not adopt
// (its hold went meanwhile) puts the record back as it was; one killed
// before that leaves a record over an address this node gave to another
// container, which the sync removes rather than rolling it forward (it
// failed on it, for ever). Found by the simulator, seed 1000000163.
func TestNeverTwiceUnadoptedRecord(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	nodes := newStickyNodes(t, srv, "10.97.5.0/24", "a")
	a := nodes[0]
	ctx := context.Background()
	cli := clientFor(t, srv, nil)
	const key = "/medianet/networks/media/sticky/media/jvb-0/eth0"
	x := a.add(t, "a-1", "media/jvb-0").IPs[0]
	a.del(t, "a-1")
	held, err := cli.RawGet(ctx, key)
	if err != nil || held == "" {
		t.Fatalf("jvb-0's record after DEL: %q, %v; want held", held, err)
	}
	hold := ipam.HoldKey("media", "media/jvb-0", "eth0")
	var local *ipam.LocalHold
	if err := a.st.View(ctx, func(tx ipam.Tx) error {
		h, ok, err := tx.Allocation(hold)
		if ok {
			local = &ipam.LocalHold{IPs: h.IPs, Own: true, Until: h.HeldUntil, Published: h.Published}
		}
		return err
	}); err != nil || local == nil {
		t.Fatalf("jvb-0's hold: %v, %v", local, err)
	}

	r, err := a.src.Resume(ctx, "media/jvb-0", "eth0", local, a.now)
	if err != nil || len(r.IPs) != 1 || r.IPs[0] != x || r.Undo == nil {
		t.Fatalf("take-back: %+v, %v; want %s with an Undo", r, err, x)
	}
	if err := r.Undo(ctx); err != nil {
		t.Fatal(err)
	}
	if v, err := cli.RawGet(ctx, key); err != nil || v != held {
		t.Fatalf("record after Undo: %q, %v; want it as before, %q", v, err, held)
	}

	// Killed before the undo: the hold goes (an operator's release here)
	// and x goes to another container.
	if r, err = a.src.Resume(ctx, "media/jvb-0", "eth0", local, a.now); err != nil || len(r.IPs) != 1 {
		t.Fatalf("take-back again: %+v, %v", r, err)
	}
	if err := a.st.Update(ctx, func(tx ipam.Tx) error { return ipam.ReleaseTx(tx, hold) }); err != nil {
		t.Fatal(err)
	}
	if got, err := a.a.Allocate(ctx, ipam.Request{ContainerID: "a-2", IfName: "eth0", IPs: []netip.Addr{x}}); err != nil || got.IPs[0] != x {
		t.Fatalf("a-2 asking for %s: %v, %v", x, got.IPs, err)
	}
	a.sync(t)
	if v, err := cli.RawGet(ctx, key); err != nil || v != "" {
		t.Fatalf("record over %s, used by a-2, after the sync: %q, %v; want none", x, v, err)
	}
	if got := a.live(t, x); len(got) != 1 || got[0] != "a:a-2" {
		t.Fatalf("%s after the sync: %v; want a-2 alone", x, got)
	}
}
