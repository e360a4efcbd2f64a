package etcd

import (
	"context"
	"fmt"
	"testing"

	"github.com/medianet/medianet/internal/etcdtest"
	"github.com/medianet/medianet/internal/etcdtest/simnode"
	"github.com/medianet/medianet/ipam"
	"github.com/medianet/medianet/ipam/boltstore"
)

// TestChurnClaimsOnlyWhenFull: pods come and go on a node; it claims a new
// block only when its held blocks are full, never because the round-robin
// cursor reached the end of them.
func TestChurnClaimsOnlyWhenFull(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	ctx := context.Background()
	n := makeNodes(t, 1, etcdConfig(srv), "10.11.0.0/16", 28)[0]
	// Two /28 blocks (30 or 32 usable addresses, depending on whether the
	// picker's blocks hold the subnet's network address and gateway).
	for round := 0; round < 5; round++ {
		for i := 0; i < 30; i++ {
			if _, err := n.Allocate(ctx, fmt.Sprintf("r%d-%d", round, i)); err != nil {
				t.Fatalf("round %d ADD %d: %v", round, i, err)
			}
		}
		if err := releaseAll(ctx, n); err != nil {
			t.Fatal(err)
		}
		bs, err := n.Blocks(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := len(bs), 2; got != want {
			t.Fatalf("round %d: blocks held: got %d, want %d", round, got, want)
		}
	}
	// network config + 2 claims
	if got, want := n.Writes.Load(), uint64(3); got != want {
		t.Errorf("etcd writes for 150 ADDs in 30 slots: got %d, want %d", got, want)
	}
	// One more than fits: exactly one more claim.
	free, err := n.FreeInHeld(ctx)
	if err != nil || free < 30 {
		t.Fatalf("free in held blocks: %d, %v", free, err)
	}
	for i := 0; i < free+1; i++ {
		if _, err := n.Allocate(ctx, fmt.Sprintf("full-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := n.Writes.Load(), uint64(4); got != want {
		t.Errorf("etcd writes after overflowing the held blocks: got %d, want %d", got, want)
	}
}

func releaseAll(ctx context.Context, n *simnode.Node) error {
	as, err := n.Allocations(ctx)
	if err != nil {
		return err
	}
	st, err := boltstore.Open(ctx, n.Dir, boltstore.Options{})
	if err != nil {
		return err
	}
	defer st.Close()
	for _, a := range as {
		if _, _, err := ipam.Release(ctx, st, a.Key); err != nil {
			return err
		}
	}
	return nil
}
