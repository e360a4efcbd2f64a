package ipam

import (
	"context"
	"fmt"
	"net/netip"
)

// The store-side steps of a cluster source's sync (etcdstore and
// kubestore SyncIdle): one copy, so that both sources read and change
// the node's store the same way. Each is its own transaction; none talks
// to the network.

// HeldBlocks returns the blocks of network the node holds as claims, by
// prefix. Bound addresses are left out: a sticky record decides them,
// not a claim.
func HeldBlocks(ctx context.Context, st Store, network string) (map[netip.Prefix]Block, error) {
	held := map[netip.Prefix]Block{}
	err := st.View(ctx, func(tx Tx) error {
		return tx.ForEachBlock(network, func(b Block) error {
			if !b.IsBound() {
				held[b.Prefix] = b
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("network %q: read held blocks: %w", network, err)
	}
	return held, nil
}

// ApplyLostMarks writes the Lost marks a sync found, in one transaction
// after its requests: a reason marks the block lost (and drops it when
// nothing is left in it), "" makes it usable again. A block no longer
// held as it was, or lost to the configuration, is left alone.
func ApplyLostMarks(ctx context.Context, st Store, network string, marks map[netip.Prefix]string) error {
	if len(marks) == 0 {
		return nil
	}
	return st.Update(ctx, func(tx Tx) error {
		for p, reason := range marks {
			b, ok, err := tx.BlockContaining(network, p.Addr())
			if err != nil {
				return err
			}
			if !ok || b.Prefix != p || LostToConfig(b.Lost) {
				continue
			}
			if reason != "" && b.InUse() == 0 {
				if err := tx.DeleteBlock(network, p); err != nil {
					return err
				}
				continue
			}
			b.Lost = reason
			if err := tx.PutBlock(network, b); err != nil {
				return err
			}
		}
		return nil
	})
}

// RemoveIfEmpty deletes block p of network from the store if it is still
// held and empty, and reports whether it did: the local half of giving a
// block back, before the source deletes its claim.
func RemoveIfEmpty(ctx context.Context, st Store, network string, p netip.Prefix) (bool, error) {
	removed := false
	err := st.Update(ctx, func(tx Tx) error {
		b, ok, err := tx.BlockContaining(network, p.Addr())
		if err != nil || !ok || b.Prefix != p || b.InUse() != 0 {
			return err
		}
		removed = true
		return tx.DeleteBlock(network, p)
	})
	return removed, err
}

// WithClaimLock runs fn under st's claim lock for network, when st has
// one (ClaimLocker): a sync's adoption or give-back then never interleaves
// with an ADD's claim, or with another's give-back, on the node.
func WithClaimLock(ctx context.Context, st Store, network string, fn func() error) error {
	if cl, ok := st.(ClaimLocker); ok {
		unlock, err := cl.ClaimLock(ctx, network)
		if err != nil {
			return fmt.Errorf("network %q: wait for this node's claims: %w", network, err)
		}
		defer unlock()
	}
	return fn()
}
