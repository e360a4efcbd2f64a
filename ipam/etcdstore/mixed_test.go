package etcdstore_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/medianet/medianet/internal/etcdtest"
	"github.com/medianet/medianet/ipam"
	"github.com/medianet/medianet/ipam/etcdstore"
)

// TestMixedBlockSizes: after a blockSize change, nodes with the new size
// and others claim at once in the little room left, so their picks
// collide. No two claims may overlap, under any key; every node gets what
// it asked for; the record says mixed.
func TestMixedBlockSizes(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	ctx := context.Background()
	sub := netip.MustParsePrefix("10.0.0.0/22") // 16 blocks of /26
	first := clientFor(t, srv, nil)
	var held []netip.Prefix
	for range 14 { // leave two /26 of room: 128 addresses
		b, err := first.ClaimNext(ctx, network(sub.String(), 26), "a", sub, ipam.NewHeld(held...))
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, b)
	}
	// 96 of those 128 addresses, in sizes that cannot fragment the room
	// into failure: two /27 and four /28, by six nodes at once.
	nodes := []struct {
		name string
		bits int
	}{{"b", 28}, {"c", 27}, {"d", 28}, {"e", 27}, {"f", 28}, {"g", 28}}
	var wg sync.WaitGroup
	errs := make(chan error, len(nodes))
	for _, n := range nodes {
		wg.Go(func() {
			c := clientFor(t, srv, nil)
			b, err := c.ClaimNext(ctx, network(sub.String(), n.bits), n.name, sub, ipam.Held{})
			switch {
			case err != nil:
				errs <- fmt.Errorf("node %s /%d: %w", n.name, n.bits, err)
			case b.Bits() != n.bits:
				errs <- fmt.Errorf("node %s got %s, want a /%d", n.name, b, n.bits)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	claims, err := first.Claims(ctx, "media", "")
	if err != nil {
		t.Fatal(err)
	}
	if want := 14 + len(nodes); len(claims) != want {
		t.Errorf("%d claims, want %d", len(claims), want)
	}
	for i, x := range claims {
		for _, y := range claims[i+1:] {
			if x.Block.Overlaps(y.Block) {
				t.Errorf("claims overlap: %s (node %s) and %s (node %s)", x.Block, x.Claim.Node, y.Block, y.Claim.Node)
			}
		}
	}
	// A requested block overlapping another node's claim names that node.
	c := clientFor(t, srv, nil)
	err = c.ClaimBlock(ctx, network(sub.String(), 28), "z", netip.PrefixFrom(held[0].Addr(), 28))
	if !errors.Is(err, etcdstore.ErrNotOwner) || !strings.Contains(err.Error(), `node "a"`) {
		t.Errorf("ClaimBlock inside a's block = %v, want ErrNotOwner naming node a", err)
	}
	// The uniform path's config check still refuses another subnet.
	if err := c.CheckConfig(ctx, network("10.9.0.0/21", 26)); !errors.Is(err, etcdstore.ErrConfigMismatch) {
		t.Errorf("CheckConfig(other subnet) = %v, want ErrConfigMismatch", err)
	}
}
