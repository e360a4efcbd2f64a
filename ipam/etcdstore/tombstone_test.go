package etcdstore_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/medianet/medianet/internal/etcdtest"
	"github.com/medianet/medianet/internal/ipamtest"
	"github.com/medianet/medianet/ipam"
	"github.com/medianet/medianet/ipam/etcdstore"
)

// TestTombstoneTakeover: node a's live block is reclaimed by force; node
// b, out of other blocks, takes it over without ever handing out the
// addresses a published; they are b's foreign reservations until a says
// it no longer uses them.
func TestTombstoneTakeover(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	ctx := context.Background()
	cfgFor := func(node string) ipam.Config {
		return ipam.Config{Network: "media", Node: node, BlockSize: 30,
			Subnets: []ipam.Subnet{{Prefix: netip.MustParsePrefix("10.93.0.0/28")}}}
	}
	type node struct {
		st  ipam.Store
		src *etcdstore.Source
		a   *ipam.Allocator
	}
	mk := func(name string) node {
		c := clientFor(t, srv, nil)
		cfg := cfgFor(name)
		st := ipamtest.Store(t)
		src, err := etcdstore.NewSource(c, &cfg, st)
		if err != nil {
			t.Fatal(err)
		}
		a, err := ipam.NewAllocator(cfg, st, src)
		if err != nil {
			t.Fatal(err)
		}
		return node{st, src, a}
	}
	a, b := mk("a"), mk("b")
	held := map[netip.Addr]string{}
	add := func(n node, who, cid string) (netip.Addr, error) {
		got, err := n.a.Allocate(ctx, ipam.Request{ContainerID: cid, IfName: "eth0"})
		if err != nil {
			return netip.Addr{}, err
		}
		ip := got.IPs[0]
		if prev, dup := held[ip]; dup {
			t.Fatalf("%s given to %s/%s and %s", ip, who, cid, prev)
		}
		held[ip] = who + "/" + cid
		return ip, nil
	}
	for _, cid := range []string{"a0", "a1"} {
		if _, err := add(a, "a", cid); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.src.SyncIdle(ctx, a.st, time.Now()); err != nil {
		t.Fatal(err)
	}
	ops := clientFor(t, srv, nil)
	if _, err := ops.Reclaim(ctx, "a", etcdstore.ReclaimOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		_, err := add(b, "b", fmt.Sprintf("b%d", i))
		if errors.Is(err, ipam.ErrExhausted) {
			break
		}
		if err != nil {
			t.Fatalf("b%d: %v", i, err)
		}
	}
	foreign := 0
	allocs, err := ipam.List(ctx, b.st, "media")
	if err != nil {
		t.Fatal(err)
	}
	for _, al := range allocs {
		if al.IsReservation() {
			foreign++
		}
	}
	if foreign != 2 {
		t.Errorf("b keeps %d foreign reservations, want a's 2", foreign)
	}
}
