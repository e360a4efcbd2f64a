package etcdstore

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/medianet/medianet/ipam"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Sticky addresses across nodes (docs/design.md, "Sticky addresses").
// One record per sticky workload and interface decides which node its
// addresses are bound to:
//
//	<prefix>/networks/<net>/sticky/<workload>/<ifname>  {"node":..., "ips":[...], "hold":..., "until":...}
//
// "live on N" (hold false) or "held on N until T" (hold true). While a
// record binds an address to a node, that node alone may use it, whoever
// claims its block; without a record, an address belongs to the node
// claiming its block. Every change of a record is one transaction that
// compares the revision it was read at:
//
//   - DEL on N: the local hold first, then "live on N" (or no record, when
//     its addresses all lie in N's own blocks) becomes "held on N"
//     (PublishHold; the sync retries it).
//   - ADD on N taking its own hold back: "held on N" or "live on N" with
//     the hold's addresses (or no record, own blocks only) becomes "live
//     on N", then the local hold becomes the attachment (Resume).
//   - ADD on M, the workload held on N: "held on N until T", T not past,
//     becomes "live on M", then M adopts the addresses (Resume).
//   - Expiry on N: "held on N" is deleted, then the local hold freed.
//
// Everything local follows the record, in the sync: a hold whose record
// binds it elsewhere becomes moved reservations (ipam.MovedKey) of its own
// addresses; a moved reservation goes once no record binds its address
// elsewhere; a record binding addresses here that nothing here has (an ADD
// killed between its transaction and its adoption) is rolled forward into
// a hold, which then expires as any other.

// stickyRecord is the value of a sticky key.
type stickyRecord struct {
	Node  string       `json:"node"`
	IPs   []netip.Addr `json:"ips"`
	Hold  bool         `json:"hold,omitempty"`
	Until time.Time    `json:"until,omitzero"`
}

// stickyKV is a record with the revision it was read at.
type stickyKV struct {
	rec stickyRecord
	rev int64
}

func (c *Client) stickyPrefix(net string) string { return c.networksPrefix() + net + "/sticky/" }

func (c *Client) stickyKey(net, workload, ifname string) string {
	return c.stickyPrefix(net) + workload + "/" + ifname
}

var _ ipam.StickySource = (*Source)(nil)

// readRecord returns the record of key (nil when absent) and the
// revision of the cluster store it was read at.
func (s *Source) readRecord(ctx context.Context, key string) (*stickyKV, int64, error) {
	resp, err := s.c.get(ctx, "read sticky record "+key, key)
	if err != nil {
		return nil, 0, err
	}
	if len(resp.Kvs) == 0 {
		return nil, resp.Header.Revision, nil
	}
	var rec stickyRecord
	if err := json.Unmarshal(resp.Kvs[0].Value, &rec); err != nil {
		return nil, 0, fmt.Errorf("sticky record %s: %w", key, err)
	}
	return &stickyKV{rec: rec, rev: resp.Kvs[0].ModRevision}, resp.Header.Revision, nil
}

// swap writes rec at key (deletes it when rec is nil) if key is still at
// cur's revision (absent when cur is nil). It reports whether it did.
func (s *Source) swap(ctx context.Context, op, key string, cur *stickyKV, rec *stickyRecord) (bool, error) {
	ok, _, err := s.swapRev(ctx, op, key, cur, rec)
	return ok, err
}

// swapRev is swap returning the revision it wrote at.
func (s *Source) swapRev(ctx context.Context, op, key string, cur *stickyKV, rec *stickyRecord) (bool, int64, error) {
	cmp := clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
	if cur != nil {
		cmp = clientv3.Compare(clientv3.ModRevision(key), "=", cur.rev)
	}
	o := clientv3.OpDelete(key)
	if rec != nil {
		v, _ := json.Marshal(rec)
		o = clientv3.OpPut(key, string(v))
	}
	tr, err := s.c.txn(ctx, op, []clientv3.Cmp{cmp}, []clientv3.Op{o}, nil)
	if err != nil || !tr.Succeeded {
		return false, 0, err
	}
	return true, tr.Header.Revision, nil
}

// Resume implements ipam.StickySource.
func (s *Source) Resume(ctx context.Context, workload, ifname string, local *ipam.LocalHold, now time.Time) (ipam.Resumed, error) {
	ctx, cancel := s.c.bound(ctx)
	defer cancel()
	key := s.c.stickyKey(s.net.Name, workload, ifname)
	cur, _, err := s.readRecord(ctx, key)
	if err != nil {
		return ipam.Resumed{}, err
	}
	var out ipam.Resumed
	switch {
	case local != nil && (cur == nil && local.Own || cur != nil && cur.rec.Node == s.node && slices.Equal(cur.rec.IPs, local.IPs)):
		out = ipam.Resumed{IPs: local.IPs, Until: local.Until, Published: local.Published}
	case cur != nil && cur.rec.Node != s.node && cur.rec.Hold && now.Before(cur.rec.Until) && len(cur.rec.IPs) > 0:
		out = ipam.Resumed{IPs: cur.rec.IPs, Moved: true, Until: cur.rec.Until}
	default:
		return ipam.Resumed{}, nil
	}
	live := stickyRecord{Node: s.node, IPs: out.IPs}
	ok, rev, err := s.swapRev(ctx, fmt.Sprintf("record workload %q live on node %q with %v", workload, s.node, out.IPs), key, cur, &live)
	if err != nil || !ok {
		return ipam.Resumed{}, err
	}
	out.Undo = func(ctx context.Context) error {
		ctx, cancel := s.c.bound(ctx)
		defer cancel()
		var prev *stickyRecord
		if cur != nil {
			prev = &cur.rec
		}
		_, err := s.swap(ctx, fmt.Sprintf("undo workload %q's record live on node %q", workload, s.node), key, &stickyKV{rec: live, rev: rev}, prev)
		return err
	}
	return out, nil
}

// PublishHold implements ipam.StickySource.
func (s *Source) PublishHold(ctx context.Context, h ipam.Allocation, now time.Time) error {
	if s.st == nil {
		return nil
	}
	ctx, cancel := s.c.bound(ctx)
	defer cancel()
	cur, seen, err := s.readRecord(ctx, s.c.stickyKey(s.net.Name, h.Workload, h.IfName))
	if err != nil {
		return err
	}
	own, err := s.ownAddrs(ctx, h.IPs)
	if err != nil {
		return err
	}
	return s.settleHold(ctx, s.st, h, own, cur, seen, now)
}

// ownAddrs reports, per address, whether it lies in a usable block this
// node claims (not a bound address).
func (s *Source) ownAddrs(ctx context.Context, ips []netip.Addr) ([]bool, error) {
	var own []bool
	err := s.st.View(ctx, func(tx ipam.Tx) error {
		var err error
		own, err = ipam.OwnAddrs(tx, s.net.Name, ips)
		return err
	})
	return own, err
}

// settleHold brings this node's hold h in line with its workload's record
// cur (nil: none), as read before at revision seen: moved away, stale,
// expired, or to be published as held here.
func (s *Source) settleHold(ctx context.Context, st ipam.Store, h ipam.Allocation, own []bool, cur *stickyKV, seen int64, now time.Time) error {
	key := s.c.stickyKey(s.net.Name, h.Workload, h.IfName)
	allOwn := !slices.Contains(own, false)
	switch {
	case cur != nil && cur.rec.Node != s.node:
		return s.movedAway(ctx, st, h, cur.rec.Node, now)
	case cur != nil && !slices.Equal(cur.rec.IPs, h.IPs):
		return dropHold(ctx, st, h) // the record binds other addresses here: a stale hold
	case cur == nil && !allOwn:
		return dropHold(ctx, st, h) // bound addresses nothing binds here any more
	case !now.Before(h.HeldUntil):
		if cur == nil || !cur.rec.Hold {
			// No record read: one may be on its way (this hold's DEL
			// publishing it). Dropping the hold on that reading could
			// free the address here while the record, created just
			// after, lets another node move it (found by the
			// simulator, seed 872545639). A record saying live here:
			// it may be an ADD's that took this very hold back after
			// the store was read; deleting it would unbind an address
			// in use (seed 2100001491). Either way, record the hold
			// first, stamped and compared like any publication (an
			// ADD that took it makes the stamp or the compare fail),
			// then expire that.
			rev := seen
			if cur != nil {
				rev = cur.rev
			}
			if ok, err := stampHold(ctx, st, h, rev); err != nil || !ok {
				return err // taken or changed meanwhile
			}
			h.Published = rev
			held := stickyRecord{Node: s.node, IPs: h.IPs, Hold: true, Until: h.HeldUntil.UTC()}
			ok, nrev, err := s.swapRev(ctx, fmt.Sprintf("record workload %q's expired hold on node %q", h.Workload, s.node), key, cur, &held)
			if err != nil || !ok {
				return err // someone changed it meanwhile: the next sync sees it
			}
			cur = &stickyKV{rec: held, rev: nrev}
		}
		ok, err := s.swap(ctx, fmt.Sprintf("expire workload %q's hold on node %q", h.Workload, s.node), key, cur, nil)
		if err != nil || !ok {
			return err // changed meanwhile: the next sync sees it
		}
		return dropHold(ctx, st, h)
	case cur != nil && cur.rec.Hold && cur.rec.Until.Equal(h.HeldUntil):
		return nil // published already: nothing to fence
	}
	// Tell the cluster store the hold is here. The hold is stamped with
	// the revision first, so an ADD of this node that decided to take
	// it back over that revision decides again (ipam's adopt). With no
	// record, the revision the absence was read at: never 0, so the
	// stamp of a first publication changes too.
	rev := seen
	if cur != nil {
		rev = cur.rev
	}
	if ok, err := stampHold(ctx, st, h, rev); err != nil || !ok {
		return err
	}
	held := stickyRecord{Node: s.node, IPs: h.IPs, Hold: true, Until: h.HeldUntil.UTC()}
	ok, wrev, err := s.swapRev(ctx, fmt.Sprintf("record workload %q held on node %q until %s", h.Workload, s.node, held.Until.Format(time.RFC3339)), key, cur, &held)
	if err != nil || !ok || cur != nil {
		return err
	}
	// Created over an absent record. Absence cannot tell "never
	// written" from "written and deleted since": a sync may have
	// expired this very hold meanwhile (recorded, deleted, freed here),
	// and this record would then bind an address this node hands to
	// others (found by the simulator, seed 1200002751). So look again:
	// a hold gone or changed takes its record with it.
	h.Published = rev
	still := false
	if err := st.View(ctx, func(tx ipam.Tx) error {
		var err error
		still, err = sameHold(tx, h)
		return err
	}); err != nil || still {
		return err
	}
	_, err = s.swap(ctx, fmt.Sprintf("withdraw workload %q's record held on node %q: the hold went meanwhile", h.Workload, s.node), key, &stickyKV{rec: held, rev: wrev}, nil)
	return err
}

// sameHold reports whether the store's hold at h.Key is still h.
func sameHold(tx ipam.Tx, h ipam.Allocation) (bool, error) {
	cur, ok, err := tx.Allocation(h.Key)
	if err != nil || !ok {
		return false, err
	}
	return slices.Equal(cur.IPs, h.IPs) && cur.HeldUntil.Equal(h.HeldUntil) && cur.Published == h.Published, nil
}

// stampHold sets h's Published to rev if h is unchanged in the store.
func stampHold(ctx context.Context, st ipam.Store, h ipam.Allocation, rev int64) (bool, error) {
	ok := false
	err := st.Update(ctx, func(tx ipam.Tx) error {
		var err error
		if ok, err = sameHold(tx, h); err != nil || !ok {
			return err
		}
		h.Published = rev
		return tx.PutAllocation(h)
	})
	return ok, err
}

// dropHold frees hold h if it is unchanged in the store: its own
// addresses are free again, its bound addresses leave this node.
func dropHold(ctx context.Context, st ipam.Store, h ipam.Allocation) error {
	return st.Update(ctx, func(tx ipam.Tx) error {
		if ok, err := sameHold(tx, h); err != nil || !ok {
			return err
		}
		return ipam.ReleaseTx(tx, h.Key)
	})
}

// movedAway replaces hold h, whose workload's record binds it to node
// to: its addresses in this node's blocks stay reserved for that node
// (moved reservations) until no record binds them elsewhere; its bound
// addresses leave this node.
func (s *Source) movedAway(ctx context.Context, st ipam.Store, h ipam.Allocation, to string, now time.Time) error {
	return st.Update(ctx, func(tx ipam.Tx) error {
		if ok, err := sameHold(tx, h); err != nil || !ok {
			return err
		}
		if err := tx.DeleteAllocation(h.Key); err != nil {
			return err
		}
		for _, ip := range h.IPs {
			b, ok, err := tx.BlockContaining(s.net.Name, ip)
			switch {
			case err != nil:
				return err
			case !ok:
			case b.IsBound():
				if err := tx.DeleteBlock(s.net.Name, b.Prefix); err != nil {
					return err
				}
			default:
				m := ipam.Allocation{Key: ipam.MovedKey(s.net.Name, to, ip), IPs: []netip.Addr{ip}, Created: now.UTC(), Workload: h.Workload}
				if err := tx.PutAllocation(m); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// recordName returns the workload and interface of a sticky key.
func (s *Source) recordName(key string) (workload, ifname string, ok bool) {
	rest, ok := strings.CutPrefix(key, s.c.stickyPrefix(s.net.Name))
	if !ok {
		return "", "", false
	}
	i := strings.LastIndexByte(rest, '/')
	if i <= 0 || i == len(rest)-1 {
		return "", "", false
	}
	return rest[:i], rest[i+1:], true
}
