package etcdstore

import (
	"context"
	"net/netip"
	"testing"

	"github.com/medianet/medianet/internal/etcdtest"
	"github.com/medianet/medianet/ipam"
)

// TestCommitMixedRefusesStaleRead: a mixed-size claim picked from a read
// at revision R must not commit when another node claimed (any block of
// the network, here an overlapping one of another size) after R. This is
// the whole of the mixed path's exclusivity, tested with the interleaving
// forced rather than hoped for.
func TestCommitMixedRefusesStaleRead(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	ctx := context.Background()
	newClient := func() *Client {
		c, err := New(Config{Endpoints: srv.Endpoints()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	sub := netip.MustParsePrefix("10.0.0.0/24")
	n28 := Network{Name: "media", Subnets: []Subnet{{Prefix: sub, BlockBits: 28}}}
	n26 := Network{Name: "media", Subnets: []Subnet{{Prefix: sub, BlockBits: 26}}}
	a, b := newClient(), newClient()
	if err := a.ensureConfig(ctx, n26); err != nil {
		t.Fatal(err)
	}
	recVal, err := a.markMixed(ctx, n28, sub)
	if err != nil {
		t.Fatal(err)
	}
	claims, rev, err := a.claimsAt(ctx, "media")
	if err != nil || len(claims) != 0 {
		t.Fatalf("claimsAt = %v, %v; want none", claims, err)
	}
	want := netip.MustParsePrefix("10.0.0.16/28")
	// Node b claims the /26 holding a's pick, after a's read.
	if _, err := b.claimMixed(ctx, n26, "b", n26.Subnets[0], ipam.Held{}, netip.MustParsePrefix("10.0.0.0/26")); err != nil {
		t.Fatal(err)
	}
	ok, err := a.commitMixed(ctx, "media", "a", want, recVal, rev)
	if err != nil || ok {
		t.Fatalf("commit of %s from a read before b's claim = %t, %v; want refused", want, ok, err)
	}
	// Picked again from a fresh read, a's claim avoids b's block.
	got, err := a.claimMixed(ctx, n28, "a", n28.Subnets[0], ipam.Held{}, netip.Prefix{})
	if err != nil || got.Overlaps(netip.MustParsePrefix("10.0.0.0/26")) {
		t.Fatalf("claimMixed after b's claim = %s, %v; want a /28 outside 10.0.0.0/26", got, err)
	}
}
