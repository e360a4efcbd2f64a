package boltstore_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/medianet/medianet/internal/ipamtest"
	"github.com/medianet/medianet/ipam"
)

// clock is a settable clock for the allocator.
type clock struct{ now time.Time }

func (c *clock) Now() time.Time { return c.now }

// TestStickyStatefulSet replays a StatefulSet pod's life on one node: jvb-3
// gets an address; deleted, its address is held for it; recreated (a new
// sandbox, the same namespace/name) it gets it back; a third pod can
// neither request the held address nor be given it; once the sticky period
// runs out after a delete, the address is free for anyone.
func TestStickyStatefulSet(t *testing.T) {
	st := ipamtest.Store(t)
	cfg := ipamtest.Config("media", "10.72.0.0/29") // five usable: .0 .1 (gateway) .7 reserved
	cfg.Sticky = 30 * time.Minute
	clk := &clock{now: time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)}
	a := ipamtest.Allocator(t, cfg, st)
	a.Now = clk.Now
	add := func(cid, workload string, ips ...string) (ipam.Allocation, error) {
		req := ipam.Request{ContainerID: cid, IfName: "eth0", Workload: workload}
		for _, s := range ips {
			req.IPs = append(req.IPs, ipamtest.Addr(s))
		}
		return a.Allocate(ctx, req)
	}
	first, err := add("sandbox-1", "media/jvb-3")
	if err != nil {
		t.Fatal(err)
	}
	jvb := first.IPs[0]
	if _, _, err := a.Release(ctx, "sandbox-1", "eth0"); err != nil {
		t.Fatal(err)
	}
	// Held: a third pod can neither ask for it nor get it.
	_, err = add("other-1", "media/coturn-0", jvb.String())
	if !errors.Is(err, ipam.ErrTaken) || !strings.Contains(err.Error(), `"media/jvb-3"`) {
		t.Errorf("request of a held address = %v, want ErrTaken naming media/jvb-3's hold", err)
	}
	for i := range 4 { // the other free addresses
		got, err := add(fmt.Sprintf("filler-%d", i), "")
		if err != nil {
			t.Fatal(err)
		}
		if got.IPs[0] == jvb {
			t.Fatalf("held %s handed to filler-%d", jvb, i)
		}
	}
	if _, err := add("filler-x", ""); !errors.Is(err, ipam.ErrExhausted) {
		t.Fatalf("with the last address held, ADD = %v, want ErrExhausted", err)
	}
	// GC does not take holds for stale attachments.
	if _, err := a.GC(ctx, []ipam.Attachment{{ContainerID: "filler-0", IfName: "eth0"}, {ContainerID: "filler-1", IfName: "eth0"},
		{ContainerID: "filler-2", IfName: "eth0"}, {ContainerID: "filler-3", IfName: "eth0"}}); err != nil {
		t.Fatal(err)
	}
	clk.now = clk.now.Add(10 * time.Minute)
	second, err := add("sandbox-2", "media/jvb-3")
	if err != nil || second.IPs[0] != jvb {
		t.Fatalf("jvb-3 recreated = %v, %v; want its address %s back", second.IPs, err, jvb)
	}
	if _, _, err := a.Release(ctx, "sandbox-2", "eth0"); err != nil {
		t.Fatal(err)
	}
	// The period runs out: the next allocation frees the hold.
	clk.now = clk.now.Add(31 * time.Minute)
	got, err := add("late", "")
	if err != nil || got.IPs[0] != jvb {
		t.Fatalf("after the sticky period, ADD = %v, %v; want the freed %s", got.IPs, err, jvb)
	}
	list, err := a.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, al := range list {
		if al.IsHold() {
			t.Errorf("hold %v still listed after its period", al)
		}
	}
}

// TestStickyOffReleases: without ipam.sticky a deleted pod's address is
// free at once, whatever its workload.
func TestStickyOffReleases(t *testing.T) {
	st := ipamtest.Store(t)
	a := ipamtest.Allocator(t, ipamtest.Config("media", "10.73.0.0/30"), st) // .1 .2 usable, .1 gateway: one
	got, err := a.Allocate(ctx, ipam.Request{ContainerID: "s1", IfName: "eth0", Workload: "media/jvb-0"})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.Release(ctx, "s1", "eth0"); err != nil {
		t.Fatal(err)
	}
	again, err := a.Allocate(ctx, ipam.Request{ContainerID: "s2", IfName: "eth0", Workload: "media/other"})
	if err != nil || again.IPs[0] != got.IPs[0] {
		t.Fatalf("after DEL on a non-sticky network: %v, %v; want %s free", again.IPs, err, got.IPs[0])
	}
}
