package boltstore_test

import (
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/medianet/medianet/internal/ipamtest"
	"github.com/medianet/medianet/ipam"
)

var printerMAC = net.HardwareAddr{0x02, 0x00, 0x5e, 0x10, 0x00, 0x01}

// TestQuarantineSkipsUntilRetry: an address another host answered for is
// quarantined in one write with the MAC and when; the allocator skips it
// (also wrapping round a small range) until its retry time, when it is
// freed and handed out again; list shows it, Check reports it as a
// conflict and finds the store consistent.
func TestQuarantineSkipsUntilRetry(t *testing.T) {
	st := ipamtest.Store(t)
	cfg := ipamtest.Config("media", "10.73.0.0/29") // usable: .2 .. .6
	clk := &clock{now: time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)}
	a := ipamtest.Allocator(t, cfg, st)
	a.Now = clk.Now

	first := alloc(t, a, "c1")
	if got, want := first.IPs[0], ipamtest.Addr("10.73.0.2"); got != want {
		t.Fatalf("first address %s, want %s", got, want)
	}
	retry := clk.now.Add(10 * time.Minute)
	c := ipam.Conflict{Addr: first.IPs[0], MAC: printerMAC, At: clk.now}
	gone, err := ipam.Quarantine(ctx, st, first.Key, []ipam.Conflict{c}, retry)
	if err != nil {
		t.Fatalf("Quarantine: %v", err)
	}
	if gone.Key != first.Key {
		t.Errorf("Quarantine gave up %v, want %v", gone.Key, first.Key)
	}
	again := alloc(t, a, "c1")
	if again.IPs[0] == c.Addr {
		t.Fatalf("allocated the quarantined %s again", c.Addr)
	}

	all, err := ipam.List(ctx, st, "media")
	if err != nil {
		t.Fatal(err)
	}
	var q ipam.Allocation
	for _, al := range all {
		if al.IsConflict() {
			q = al
		}
	}
	if q.Conflict != printerMAC.String() || !q.RetryAt.Equal(retry) || !q.Created.Equal(clk.now) || len(q.IPs) != 1 || q.IPs[0] != c.Addr {
		t.Fatalf("quarantine record = %+v, want %s by %s at %s until %s", q, c.Addr, printerMAC, clk.now, retry)
	}
	if !q.IsReservation() {
		t.Error("a quarantine is not a reservation: GC would free it")
	}
	findings, err := ipam.Check(ctx, st)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	if len(findings) != 1 || findings[0].Kind != ipam.FindingConflict || findings[0].MAC != printerMAC.String() || findings[0].Addr != c.Addr {
		t.Fatalf("findings = %v, want one conflict on %s by %s", findings, c.Addr, printerMAC)
	}
	// GC keeps it; the rest of the range is used, and the allocator
	// wraps without taking it.
	if _, err := a.GC(ctx, []ipam.Attachment{{ContainerID: "c1", IfName: "eth0"}}); err != nil {
		t.Fatal(err)
	}
	for _, cid := range []string{"c2", "c3", "c4"} {
		if got := alloc(t, a, cid); got.IPs[0] == c.Addr {
			t.Fatalf("%s got the quarantined %s", cid, c.Addr)
		}
	}
	if _, err := a.Allocate(ctx, ipam.Request{ContainerID: "c5", IfName: "eth0"}); !errors.Is(err, ipam.ErrExhausted) {
		t.Fatalf("c5 before the retry time: %v, want ErrExhausted", err)
	}
	// A requested quarantined address is refused, naming the holder.
	if _, err := a.Allocate(ctx, ipam.Request{ContainerID: "c6", IfName: "eth0", IPs: []netip.Addr{c.Addr}}); !errors.Is(err, ipam.ErrTaken) {
		t.Fatalf("request of the quarantined address: %v, want ErrTaken", err)
	}

	clk.now = retry
	if got := alloc(t, a, "c5"); got.IPs[0] != c.Addr {
		t.Fatalf("after the retry time c5 got %s, want the freed %s", got.IPs[0], c.Addr)
	}
	if findings, err := ipam.Check(ctx, st); err != nil || len(findings) != 0 {
		t.Fatalf("Check after the retry: %v, %v; want consistent, no findings", findings, err)
	}
}

// TestQuarantineDualStack: one conflicting family gives up the whole
// attachment; only the address that was answered for is quarantined.
func TestQuarantineDualStack(t *testing.T) {
	st := ipamtest.Store(t)
	a := ipamtest.Allocator(t, ipamtest.Config("media", "10.74.0.0/24", "fd00:74::/120"), st)
	first := alloc(t, a, "c1")
	c := ipam.Conflict{Addr: first.IPs[1], MAC: printerMAC, At: time.Now()}
	if _, err := ipam.Quarantine(ctx, st, first.Key, []ipam.Conflict{c}, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	again := alloc(t, a, "c1")
	if again.IPs[1] == c.Addr {
		t.Fatalf("got the quarantined %s again", c.Addr)
	}
	all, err := ipam.List(ctx, st, "media")
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 {
		t.Fatalf("allocations %v, want the attachment and one quarantine", all)
	}
	if _, err := ipam.Check(ctx, st); err != nil {
		t.Fatalf("Check: %v", err)
	}
}

// TestQuarantineOfAResumedHold: the sticky address of a workload answered
// by another host is not given away behind the operator's back: nothing
// changes, and ErrConflict says so.
func TestQuarantineOfAResumedHold(t *testing.T) {
	st := ipamtest.Store(t)
	cfg := ipamtest.Config("media", "10.75.0.0/24")
	cfg.Sticky = time.Hour
	a := ipamtest.Allocator(t, cfg, st)
	req := ipam.Request{ContainerID: "s1", IfName: "eth0", Workload: "media/jvb-0"}
	first, err := a.Allocate(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.Release(ctx, "s1", "eth0"); err != nil {
		t.Fatal(err)
	}
	req.ContainerID = "s2"
	back, err := a.Allocate(ctx, req)
	if err != nil || back.Resumed.IsZero() {
		t.Fatalf("the workload's second sandbox: %+v, %v; want its hold resumed", back, err)
	}
	c := ipam.Conflict{Addr: first.IPs[0], MAC: printerMAC, At: time.Now()}
	if _, err := ipam.Quarantine(ctx, st, back.Key, []ipam.Conflict{c}, time.Now().Add(time.Hour)); !errors.Is(err, ipam.ErrConflict) {
		t.Fatalf("Quarantine of a resumed hold: %v, want ErrConflict", err)
	}
	if got, err := a.Get(ctx, "s2", "eth0"); err != nil || got.IPs[0] != first.IPs[0] {
		t.Fatalf("after the refused quarantine: %+v, %v; want the attachment unchanged", got, err)
	}
}
