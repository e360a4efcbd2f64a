package kubestore_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/medianet/medianet/internal/kubetest"
	"github.com/medianet/medianet/ipam"
	"github.com/medianet/medianet/ipam/kubestore"
)

// The cases of issue 18 ("Never live twice") on the kubernetes source:
// each put one address on two live containers, or leaked one, with the
// sticky design before the workload's record became the one authority.

// Case 1: a node takes its own hold back without asking; before its next
// sync the same workload starts on another node, which moves the address
// to itself. Both were live.
func testOwnHoldTakenBack(t *testing.T, srv *kubetest.Server) {
	nodes := newStickyNodes(t, srv, "nt-own", "10.71.0.0/24", 28, "a", "b")
	a, b := nodes[0], nodes[1]
	x := a.add(t, "a-1", "media/jvb-0").IPs[0]
	a.del(t, "a-1")
	a.sync(t)
	if got := a.add(t, "a-2", "media/jvb-0").IPs[0]; got != x {
		t.Fatalf("jvb-0 back on a got %s, want its address %s", got, x)
	}
	if got := b.add(t, "b-1", "media/jvb-0").IPs[0]; got == x {
		t.Errorf("jvb-0 on b got %s, live on a", x)
	}
	liveTwice(t, x, a, b)
	a.sync(t)
	b.sync(t)
	liveTwice(t, x, a, b)
}

// Case 2: with blockSize 32, a node's own claimed /32 was taken for an
// address moved here (inferred from the block's size) and handed to a
// new pod while the workload used it on another node.
func testBlockSize32(t *testing.T, srv *kubetest.Server) {
	nodes := newStickyNodes(t, srv, "nt-32", "10.71.1.0/27", 32, "a", "b")
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

// Case 3: an ADD killed after the write that moved the address here,
// before the store adopted it. The record is rolled forward into a hold
// on the node it names, which expires as any hold: both nodes end empty,
// and so does the API.
func testKilledAfterMove(t *testing.T, srv *kubetest.Server) {
	nodes := newStickyNodes(t, srv, "nt-killed", "10.71.2.0/24", 28, "a", "b")
	a, b := nodes[0], nodes[1]
	x := a.add(t, "a-1", "media/jvb-0").IPs[0]
	a.del(t, "a-1")
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
		if left := n.allocations(t); len(left) > 0 {
			t.Errorf("node %s keeps %v after the drain", n.name, left)
		}
	}
	if got := decision(record(t, srv, "nt-killed", "media/jvb-0")); got != "none" {
		t.Errorf("IPAMSticky after the drain: %s, want none", got)
	}
}

// Case 4: a failed ADD leaves nothing; a hold the ADD took goes back as
// it was, published, so the workload starting elsewhere gets it.
func testAbortLeavesNothing(t *testing.T, srv *kubetest.Server) {
	nodes := newStickyNodes(t, srv, "nt-abort", "10.71.3.0/24", 28, "a", "b")
	a, b := nodes[0], nodes[1]
	ctx := context.Background()
	a.add(t, "a-1", "media/new")
	if err := a.a.Abort(ctx, "a-1", "eth0"); err != nil {
		t.Fatal(err)
	}
	if left := a.allocations(t); len(left) > 0 {
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
	if got := b.add(t, "b-1", "media/jvb-0").IPs[0]; got != x {
		t.Fatalf("jvb-0 on b after a's failed ADD got %s, want %s", got, x)
	}
	a.sync(t)
	liveTwice(t, x, a, b)
}

// Case 5: holds expire on the node that keeps them without a node
// agent's sync or a GC (SettleDue, which the plugins call after ADD and
// DEL), and the record goes with them.
func testSettleDue(t *testing.T, srv *kubetest.Server) {
	nodes := newStickyNodes(t, srv, "nt-settle", "10.71.4.0/24", 28, "a")
	a := nodes[0]
	ctx := context.Background()
	x := a.add(t, "a-1", "media/jvb-0").IPs[0]
	a.del(t, "a-1")
	calls, _ := a.c.Calls()
	if err := a.src.SettleDue(ctx, a.st, a.now); err != nil {
		t.Fatal(err)
	}
	if now, _ := a.c.Calls(); now != calls {
		t.Errorf("SettleDue with nothing due made %d API calls, want 0", now-calls)
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
	if got := decision(record(t, srv, "nt-settle", "media/jvb-0")); got != "none" {
		t.Errorf("jvb-0's record after expiry: %s; want none", got)
	}
}

// An ADD that recorded its workload live here and then did not adopt
// puts the record back as it was; one killed before that leaves a record
// over an address this node gave to another container, which the sync
// removes rather than rolling it forward (simulator seed 1000000163 on
// the etcd source).
func testUnadoptedRecord(t *testing.T, srv *kubetest.Server) {
	nodes := newStickyNodes(t, srv, "nt-unadopted", "10.71.5.0/24", 28, "a")
	a := nodes[0]
	ctx := context.Background()
	x := a.add(t, "a-1", "media/jvb-0").IPs[0]
	a.del(t, "a-1")
	held := decision(record(t, srv, "nt-unadopted", "media/jvb-0"))
	if held == "none" {
		t.Fatalf("jvb-0's record after DEL: none; want held")
	}
	hold := ipam.HoldKey("nt-unadopted", "media/jvb-0", "eth0")
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
	if got := decision(record(t, srv, "nt-unadopted", "media/jvb-0")); got == held {
		t.Fatalf("record after the take-back: %s, unchanged", got)
	}
	if err := r.Undo(ctx); err != nil {
		t.Fatal(err)
	}
	if got := decision(record(t, srv, "nt-unadopted", "media/jvb-0")); got != held {
		t.Fatalf("record after Undo: %s; want it as before, %s", got, held)
	}
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
	if got := decision(record(t, srv, "nt-unadopted", "media/jvb-0")); got != "none" {
		t.Fatalf("record over %s, used by a-2, after the sync: %s; want none", x, got)
	}
	if got := a.live(t, x); len(got) != 1 || got[0] != "a:a-2" {
		t.Fatalf("%s after the sync: %v; want a-2 alone", x, got)
	}
}

// testForcedReclaim: jvb-0 moved from a to b; a dies and is reclaimed by
// force (its blocks deleted, no tombstones), which deletes its records
// too (a hold of media/held). A node d claiming a's old block keeps x
// reserved for b while b's workload runs there, and frees it once b's
// hold of it expires.
func testForcedReclaim(t *testing.T, srv *kubetest.Server) {
	// A /27 of /28 blocks: two blocks, so d gets a's once b holds the other.
	nodes := newStickyNodes(t, srv, "nt-reclaim", "10.71.6.0/27", 28, "a", "b", "d")
	a, b, d := nodes[0], nodes[1], nodes[2]
	ctx := context.Background()
	x := a.add(t, "a-1", "media/jvb-0").IPs[0]
	a.add(t, "a-2", "media/other")
	a.add(t, "a-3", "media/held")
	a.del(t, "a-3")
	a.del(t, "a-1")
	if got := b.add(t, "b-1", "media/jvb-0").IPs[0]; got != x {
		t.Fatalf("jvb-0 on b got %s, want %s", got, x)
	}
	a.sync(t)
	b.sync(t)
	if _, err := a.c.Reclaim(ctx, "nt-reclaim", "a", false, false); !errors.Is(err, kubestore.ErrLiveBlocks) {
		t.Fatalf("reclaim of a without force: %v, want ErrLiveBlocks", err)
	}
	res, err := a.c.Reclaim(ctx, "nt-reclaim", "a", true, false)
	if err != nil || len(res.Freed) != 1 || len(res.Records) != 1 {
		t.Fatalf("forced reclaim of a: %+v, %v; want its block and media/held's record freed", res, err)
	}
	if got := decision(record(t, srv, "nt-reclaim", "media/held")); got != "none" {
		t.Errorf("media/held's record on the reclaimed node: %s, want none", got)
	}
	// d takes a's old block (b holds the other): x stays reserved for b.
	var got []netip.Addr
	for i := range 16 {
		al, err := d.a.Allocate(ctx, ipam.Request{ContainerID: fmt.Sprintf("d-%d", i), IfName: "eth0"})
		if err != nil {
			break
		}
		got = append(got, al.IPs[0])
	}
	if len(got) == 0 {
		t.Fatal("node d got no address from a's reclaimed block")
	}
	for _, ip := range got {
		if ip == x {
			t.Fatalf("node d handed out %s, live on b", x)
		}
	}
	if !d.used(t, x) {
		t.Fatalf("node d does not reserve %s, which b's record binds", x)
	}
	liveTwice(t, x, b, d)
	b.del(t, "b-1")
	b.now = b.now.Add(31 * time.Minute)
	b.sync(t)
	d.sync(t)
	if d.used(t, x) {
		t.Errorf("node d still reserves %s after b's hold expired", x)
	}
}
