package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/medianet/medianet/ipam"
)

// SyncResult says what SyncIdle did.
type SyncResult struct {
	// Marked are blocks whose empty mark changed in etcd.
	Marked []netip.Prefix
	// Released are blocks given back (removed locally, claim deleted).
	Released []netip.Prefix
	// Reclaimed are held blocks whose claim had vanished (a forced reclaim
	// while this node was away) and that were free, so they were claimed
	// again for this node.
	Reclaimed []netip.Prefix
	// Lost are held blocks now claimed by another node (a forced reclaim
	// while this node was away, then a claim elsewhere). Addresses in them
	// may be in use twice: stop using them, release their allocations and
	// delete them from the store; report it (STATUS).
	Lost []netip.Prefix
}

// SyncIdle brings the node's claims in etcd in line with its store, for
// the source's network: a held block whose claim vanished is claimed again
// (or reported Lost when another node has it), a held block with no
// allocation is marked empty, a
// block marked empty that has allocations again is unmarked (writes happen
// only on such changes), and a block marked empty for at least
// Config.IdleRelease at now is given back: removed from the store in a
// transaction that checks it is still empty, then its claim deleted if
// unchanged (ModRevision). It reads one claim per held block. Call it
// from GC, from a daemon's timer, or best-effort after a DEL; it is
// bounded by Config.RequestTimeout and returns ErrUnavailable when etcd
// is down, which the caller may ignore.
func (s *Source) SyncIdle(ctx context.Context, st ipam.Store, now time.Time) (SyncResult, error) {
	var res SyncResult
	held, err := heldBlocks(ctx, st, s.net.Name)
	if err != nil {
		return res, err
	}
	ctx, cancel := s.c.bound(ctx)
	defer cancel()
	for p, empty := range held {
		bc, ok, err := s.c.getClaim(ctx, s.net.Name, p)
		if err != nil {
			return res, err
		}
		if !ok {
			if err := s.c.ClaimBlock(ctx, s.net, s.node, p); errors.Is(err, ErrNotOwner) {
				res.Lost = append(res.Lost, p)
			} else if err != nil {
				return res, err
			} else {
				res.Reclaimed = append(res.Reclaimed, p)
			}
			continue
		}
		if bc.Claim.Node != s.node {
			res.Lost = append(res.Lost, p)
			continue
		}
		if bc.Claim.Empty != empty {
			if err := s.c.MarkEmpty(ctx, s.net.Name, s.node, p, empty); err != nil {
				return res, err
			}
			res.Marked = append(res.Marked, p)
			continue // the idle time starts now
		}
		if !empty || s.c.cfg.IdleRelease < 0 || now.Sub(bc.Claim.EmptySince) < s.c.cfg.IdleRelease {
			continue
		}
		removed, err := removeIfEmpty(ctx, st, s.net.Name, p)
		if err != nil || !removed {
			return res, err
		}
		if _, err := s.c.deleteIfUnchanged(ctx, bc); err != nil {
			return res, err // the claim stays; the next ClaimNext adopts it again
		}
		res.Released = append(res.Released, p)
	}
	return res, nil
}

// heldBlocks maps every held block of network to whether it is empty.
func heldBlocks(ctx context.Context, st ipam.Store, network string) (map[netip.Prefix]bool, error) {
	held := map[netip.Prefix]bool{}
	err := st.View(ctx, func(tx ipam.Tx) error {
		return tx.ForEachBlock(network, func(b ipam.Block) error {
			held[b.Prefix] = blockEmpty(b)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("network %q: read held blocks: %w", network, err)
	}
	return held, nil
}

func blockEmpty(b ipam.Block) bool {
	for _, w := range b.Used {
		if w != 0 {
			return false
		}
	}
	return true
}

// removeIfEmpty deletes p from the store if it is still held and empty.
func removeIfEmpty(ctx context.Context, st ipam.Store, network string, p netip.Prefix) (bool, error) {
	removed := false
	err := st.Update(ctx, func(tx ipam.Tx) error {
		b, ok, err := tx.BlockContaining(network, p.Addr())
		if err != nil || !ok || b.Prefix != p || !blockEmpty(b) {
			return err
		}
		removed = true
		return tx.DeleteBlock(network, p)
	})
	return removed, err
}
