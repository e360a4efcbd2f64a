package etcdstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/medianet/medianet/ipam"
)

// SyncResult says what SyncIdle did.
type SyncResult struct {
	// Marked are blocks whose usage (empty mark, used bitmap) changed in
	// etcd.
	Marked []netip.Prefix
	// Released are blocks given back (removed locally, claim deleted).
	Released []netip.Prefix
	// Reclaimed are held blocks whose claim had vanished (a forced reclaim
	// of an empty-marked block while this node was away) and that were
	// free, so they were claimed again for this node.
	Reclaimed []netip.Prefix
	// Lost are held blocks now claimed by another node or reclaimed by
	// force. They are marked lost in the store: no address comes from them
	// any more; their allocations stay until released (see ipam.Check).
	Lost []netip.Prefix
	// Foreign are foreign reservations released because the node they
	// were kept for said it no longer uses them.
	Foreign []netip.Addr
}

// SyncIdle brings the node's claims in etcd in line with its store, for
// the source's network, and the store in line with etcd:
//   - a held block whose claim vanished is claimed again (or lost when
//     another node has it);
//   - a held block claimed by another node, or reclaimed by force, is
//     marked lost in the store, and the node tells (foreignKey) which of
//     its addresses there are still in use, so the new owner keeps them
//     reserved; once none is, the lost block is dropped from the store;
//   - for its own blocks, the used bitmap and empty mark are published
//     (a write only when they changed), a block marked empty for at least
//     Config.IdleRelease at now is given back (removed from the store in a
//     transaction that checks it is still empty, then its claim deleted if
//     unchanged), and a block marked lost is usable again;
//   - foreign reservations are released once their node says so;
//   - on a sticky network, the node's holds, moved reservations and
//     bound addresses follow the workloads' records (see sticky_sync.go).
//
// It never holds the store's lock while it talks to etcd. Call it from
// GC, from a daemon's timer (medianetd, the node agent), or from
// `medianetctl ipam sync`; each etcd round trip is bounded by
// Config.RequestTimeout, and it returns ErrUnavailable when etcd is down,
// which the caller may ignore.
func (s *Source) SyncIdle(ctx context.Context, st ipam.Store, now time.Time) (SyncResult, error) {
	var res SyncResult
	// Sticky state first: moved reservations it releases then count in
	// the usage this sync publishes, rather than the next one's.
	if err := s.syncSticky(ctx, st, now); err != nil {
		return res, err
	}
	if err := s.adoptOrphans(ctx, st); err != nil {
		return res, err
	}
	held, err := ipam.HeldBlocks(ctx, st, s.net.Name)
	if err != nil {
		return res, err
	}
	// Each etcd round trip is bounded by Config.RequestTimeout, not the
	// whole sync: the store's lock waits must not eat etcd's budget.
	marks := map[netip.Prefix]string{} // new Lost reason ("" = usable again)
	for p, hb := range held {
		if err := s.syncBlock(ctx, st, p, hb, now, marks, &res); err != nil {
			return res, errors.Join(err, ipam.ApplyLostMarks(ctx, st, s.net.Name, marks))
		}
	}
	if err := ipam.ApplyLostMarks(ctx, st, s.net.Name, marks); err != nil {
		return res, err
	}
	freed, err := s.syncForeign(ctx, st)
	res.Foreign = freed
	return res, err
}

func (s *Source) syncBlock(ctx context.Context, st ipam.Store, p netip.Prefix, hb ipam.Block, now time.Time, marks map[netip.Prefix]string, res *SyncResult) error {
	bc, ok, err := s.c.getClaim(ctx, s.net.Name, p)
	if err != nil {
		return err
	}
	if !ok {
		err := s.c.ClaimBlock(ctx, s.net, s.node, p)
		if errors.Is(err, ErrNotOwner) {
			res.Lost = append(res.Lost, p)
			marks[p] = fmt.Sprintf("block %s was reclaimed from this node and claimed by another in etcd", p)
			return nil
		}
		if err == nil {
			res.Reclaimed = append(res.Reclaimed, p)
		}
		return err
	}
	if bc.Claim.IsTombstone() && bc.Claim.ReclaimedFrom == s.node {
		// Reclaimed by force while this node was away, and nobody took
		// it since: the node is alive after all, so it takes it back.
		ok, err := s.c.retake(ctx, bc, s.node)
		if err != nil || !ok {
			return err
		}
		res.Reclaimed = append(res.Reclaimed, p)
		if hb.Lost != "" && !ipam.LostToConfig(hb.Lost) {
			marks[p] = ""
		}
		return nil
	}
	if bc.Claim.Node != s.node {
		res.Lost = append(res.Lost, p)
		if !ipam.LostToConfig(hb.Lost) {
			marks[p] = lostReason(p, bc.Claim)
		}
		return s.ack(ctx, p, hb.Used)
	}
	if hb.Lost != "" && !ipam.LostToConfig(hb.Lost) {
		marks[p] = ""
	}
	used := usedBytes(hb.Used)
	if !bytes.Equal(used, bc.Claim.Used) || bc.Claim.Empty != (used == nil) {
		if err := s.c.MarkUsage(ctx, s.net.Name, s.node, p, used); err != nil {
			return err
		}
		res.Marked = append(res.Marked, p)
		return nil // an idle time starts now
	}
	if used != nil || s.c.cfg.IdleRelease < 0 || now.Sub(bc.Claim.EmptySince) < s.c.cfg.IdleRelease {
		return nil
	}
	// Under the claim lock: another sync of this node adopting orphan
	// claims must not read the claim before it goes and record the block
	// after it went (found by the simulator: an ADD then allocated from
	// a block nobody claimed).
	return ipam.WithClaimLock(ctx, st, s.net.Name, func() error {
		removed, err := ipam.RemoveIfEmpty(ctx, st, s.net.Name, p)
		if err != nil || !removed {
			return err
		}
		if _, err := s.c.deleteIfUnchanged(ctx, bc); err != nil {
			return err // the claim stays; the next sync adopts it again
		}
		res.Released = append(res.Released, p)
		return nil
	})
}

// adoptOrphans records in the store the blocks etcd says this node claims
// and the store does not hold: an ADD killed between its claim and the
// transaction recording the block leaves one, and without this it would
// stay claimed for ever (found by the simulator's drain). Etcd decides
// who owns a block; the store follows, and the block is then published
// and given back as any other. An ADD still on its way to record the
// block finds it held and skips it.
//
// The listing needs no lock; only candidates (claims the store lacks,
// rare: after a kill) are read again under the node's claim lock for the
// network, which the ADDs' claims and the sync's give-backs also hold: a
// claim read there is neither one an ADD is about to record nor one a
// give-back is deleting (the simulator found the adoption racing a
// give-back without it). So a sync holds the claim lock across etcd only
// when there is something to adopt.
func (s *Source) adoptOrphans(ctx context.Context, st ipam.Store) error {
	claims, err := s.c.Claims(ctx, s.net.Name, s.node)
	if err != nil {
		return err
	}
	var candidates []BlockClaim
	err = st.View(ctx, func(tx ipam.Tx) error {
		for _, bc := range claims {
			missing, err := s.orphan(tx, bc)
			if err != nil {
				return err
			}
			if missing {
				candidates = append(candidates, bc)
			}
		}
		return nil
	})
	if err != nil || len(candidates) == 0 {
		return err
	}
	return ipam.WithClaimLock(ctx, st, s.net.Name, func() error {
		var fresh []BlockClaim
		var blocks []netip.Prefix
		for _, bc := range candidates {
			cur, ok, err := s.c.getClaim(ctx, s.net.Name, bc.Block)
			if err != nil {
				return err
			}
			if ok && cur.Claim.Node == s.node {
				fresh = append(fresh, cur)
				blocks = append(blocks, cur.Block)
			}
		}
		if len(fresh) == 0 {
			return nil
		}
		bound, err := s.boundElsewhere(ctx, blocks)
		if err != nil {
			return err
		}
		return st.Update(ctx, func(tx ipam.Tx) error { return s.adopt(tx, fresh, bound) })
	})
}

// orphan reports whether bc is this node's claim of a block the store
// neither holds nor overlaps.
func (s *Source) orphan(tx ipam.Tx, bc BlockClaim) (bool, error) {
	sub, ok := s.cfg.SubnetOf(bc.Block.Addr())
	if !ok || bc.Claim.IsTombstone() || bc.Claim.Node != s.node || !ipam.Covers(sub.Prefix, bc.Block) {
		return false, nil
	}
	overlaps := false
	err := tx.ForEachBlock(s.net.Name, func(b ipam.Block) error {
		overlaps = overlaps || b.Prefix.Overlaps(bc.Block)
		return nil
	})
	return !overlaps, err
}

// adopt records the orphan claims in the store.
func (s *Source) adopt(tx ipam.Tx, claims []BlockClaim, bound map[netip.Prefix][]ipam.ForeignAddrs) error {
	for _, bc := range claims {
		missing, err := s.orphan(tx, bc)
		if err != nil || !missing {
			if err != nil {
				return err
			}
			continue
		}
		sub, _ := s.cfg.SubnetOf(bc.Block.Addr())
		b, err := ipam.NewBlock(bc.Block, s.cfg.Reserved(sub))
		if err != nil {
			return err
		}
		for _, f := range bound[bc.Block] {
			for _, ip := range f.Addrs {
				off, ok := b.Offset(ip)
				if !ok {
					continue
				}
				b.SetUsed(off, true)
				mk := ipam.Allocation{Key: ipam.MovedKey(s.net.Name, f.Node, ip), IPs: []netip.Addr{ip}, Created: s.c.now().UTC()}
				if err := tx.PutAllocation(mk); err != nil {
					return err
				}
			}
		}
		if err := tx.PutBlock(s.net.Name, b); err != nil {
			return err
		}
	}
	return nil
}
