package kubestore

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
	// Marked are blocks whose usage (inUse, emptySince) was published.
	Marked []netip.Prefix
	// Released are blocks given back (removed locally, object deleted).
	Released []netip.Prefix
	// Reclaimed are held blocks whose object had vanished and that were
	// free, so they were claimed again for this node.
	Reclaimed []netip.Prefix
	// Adopted are blocks the API gives this node that the store lacked
	// (an ADD killed between its claim and its record).
	Adopted []netip.Prefix
	// Lost are held blocks now claimed by another node, marked lost in
	// the store: no address comes from them any more.
	Lost []netip.Prefix
}

// SyncIdle brings the node's IPAMBlocks in line with its store, for the
// source's network, and the store in line with the API, with one list
// and then a write only where something changed:
//   - a block the API gives this node and the store lacks is recorded;
//   - a held block whose object vanished is claimed again (or lost when
//     another node has it); one claimed by another node is marked lost;
//   - for its own blocks, inUse and emptySince are published, and a
//     block empty for at least Config.IdleRelease at now is given back
//     (removed from the store in a transaction that checks it is still
//     empty, then its object deleted if unchanged).
//
// It never holds the store's lock while it talks to the API server; each
// round trip is bounded by Config.RequestTimeout, and it returns
// ErrUnavailable when the server is down, which the caller may ignore.
func (s *Source) SyncIdle(ctx context.Context, st ipam.Store, now time.Time) (SyncResult, error) {
	var res SyncResult
	// Sticky state first, as etcdstore's: moved reservations it releases
	// then count in the usage this sync publishes.
	if err := s.syncSticky(ctx, st, now); err != nil {
		return res, err
	}
	claims, err := s.c.Blocks(ctx, s.net.Name, "")
	if err != nil {
		return res, err
	}
	if err := s.adoptOrphans(ctx, st, claims, &res); err != nil {
		return res, err
	}
	held, err := ipam.HeldBlocks(ctx, st, s.net.Name)
	if err != nil {
		return res, err
	}
	byCIDR := map[netip.Prefix]Block{}
	for _, b := range claims {
		byCIDR[b.CIDR] = b
	}
	marks := map[netip.Prefix]string{}
	for p, hb := range held {
		b, ok := byCIDR[p]
		if err := s.syncBlock(ctx, st, p, hb, b, ok, now, marks, &res); err != nil {
			return res, errors.Join(err, ipam.ApplyLostMarks(ctx, st, s.net.Name, marks))
		}
	}
	return res, ipam.ApplyLostMarks(ctx, st, s.net.Name, marks)
}

func (s *Source) syncBlock(ctx context.Context, st ipam.Store, p netip.Prefix, hb ipam.Block, b Block, exists bool, now time.Time, marks map[netip.Prefix]string, res *SyncResult) error {
	ctx, cancel := s.c.bound(ctx)
	defer cancel()
	if !exists {
		uid, err := s.prepare(ctx)
		if err == nil {
			err = s.c.ClaimBlock(ctx, s.net, s.node, uid, p)
		}
		if errors.Is(err, ErrNotOwner) {
			res.Lost = append(res.Lost, p)
			marks[p] = fmt.Sprintf("block %s was reclaimed from this node and claimed by another in the Kubernetes API", p)
			return nil
		}
		if err == nil {
			res.Reclaimed = append(res.Reclaimed, p)
		}
		return err
	}
	if b.Node != s.node {
		res.Lost = append(res.Lost, p)
		if !ipam.LostToConfig(hb.Lost) {
			marks[p] = lostReason(b)
		}
		return nil
	}
	if hb.Lost != "" && !ipam.LostToConfig(hb.Lost) {
		marks[p] = ""
	}
	inUse := hb.InUse()
	if b.InUse != inUse || b.Empty() != (inUse == 0) {
		b.InUse, b.EmptySince = inUse, time.Time{}
		if inUse == 0 {
			b.EmptySince = now.UTC().Truncate(time.Second)
		}
		if _, _, err := s.c.updateStatus(ctx, b); err != nil {
			return err
		}
		res.Marked = append(res.Marked, p)
		return nil // an idle time starts now
	}
	if inUse != 0 || s.c.cfg.IdleRelease < 0 || now.Sub(b.EmptySince) < s.c.cfg.IdleRelease {
		return nil
	}
	// Under the claim lock: an adoption of this node's orphans must not
	// read the object before it goes and record the block after.
	return ipam.WithClaimLock(ctx, st, s.net.Name, func() error {
		removed, err := ipam.RemoveIfEmpty(ctx, st, s.net.Name, p)
		if err != nil || !removed {
			return err
		}
		if _, err := s.c.deleteIfUnchanged(ctx, b); err != nil {
			return err // the object stays; the next sync adopts it again
		}
		res.Released = append(res.Released, p)
		return nil
	})
}

// adoptOrphans records the blocks claims give this node that the store
// neither holds nor overlaps, reading each again under the node's claim
// lock (which ADDs' claims and give-backs hold too).
func (s *Source) adoptOrphans(ctx context.Context, st ipam.Store, claims []Block, res *SyncResult) error {
	var candidates []Block
	err := st.View(ctx, func(tx ipam.Tx) error {
		for _, b := range claims {
			missing, err := s.orphan(tx, b)
			if err != nil {
				return err
			}
			if missing {
				candidates = append(candidates, b)
			}
		}
		return nil
	})
	if err != nil || len(candidates) == 0 {
		return err
	}
	return ipam.WithClaimLock(ctx, st, s.net.Name, func() error {
		var fresh []Block
		for _, b := range candidates {
			cctx, cancel := s.c.bound(ctx)
			cur, ok, err := s.c.get(cctx, s.net.Name, b.CIDR)
			cancel()
			if err != nil {
				return err
			}
			if ok && cur.Node == s.node {
				fresh = append(fresh, cur)
			}
		}
		var bound map[netip.Prefix][]ipam.ForeignAddrs
		if len(fresh) > 0 {
			var err error
			if bound, err = s.boundElsewhere(ctx, blockCIDRs(fresh)); err != nil {
				return err
			}
		}
		return st.Update(ctx, func(tx ipam.Tx) error {
			for _, b := range fresh {
				missing, err := s.orphan(tx, b)
				if err != nil {
					return err
				}
				if !missing {
					continue
				}
				sub, _ := s.cfg.SubnetOf(b.CIDR.Addr())
				blk, err := ipam.NewBlock(b.CIDR, s.cfg.Reserved(sub))
				if err != nil {
					return err
				}
				if err := reserveBound(tx, s.net.Name, &blk, bound[b.CIDR], s.c.now()); err != nil {
					return err
				}
				if err := tx.PutBlock(s.net.Name, blk); err != nil {
					return err
				}
				res.Adopted = append(res.Adopted, b.CIDR)
			}
			return nil
		})
	})
}

// orphan reports whether b is this node's claim of a block of one of its
// subnets that the store neither holds nor overlaps.
func (s *Source) orphan(tx ipam.Tx, b Block) (bool, error) {
	sub, ok := s.cfg.SubnetOf(b.CIDR.Addr())
	if !ok || b.Node != s.node || b.Network != s.net.Name || !ipam.Covers(sub.Prefix, b.CIDR) {
		return false, nil
	}
	overlaps := false
	err := tx.ForEachBlock(s.net.Name, func(hb ipam.Block) error {
		overlaps = overlaps || hb.Prefix.Overlaps(b.CIDR)
		return nil
	})
	return !overlaps, err
}
