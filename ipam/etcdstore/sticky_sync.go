package etcdstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/medianet/medianet/ipam"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// localSticky is what the sync needs of the node's sticky state, read in
// one View.
type localSticky struct {
	holds []ipam.Allocation
	own   [][]bool // per hold, per address: in a usable block this node claims
	// has: workload/ifname -> address sets of its attachments and hold.
	has   map[string][][]netip.Addr
	moved []ipam.Allocation
}

func (s *Source) readLocalSticky(ctx context.Context, st ipam.Store) (localSticky, error) {
	ls := localSticky{has: map[string][][]netip.Addr{}}
	err := st.View(ctx, func(tx ipam.Tx) error {
		return tx.ForEachAllocation(s.net.Name, func(a ipam.Allocation) error {
			switch {
			case strings.HasPrefix(a.ContainerID, ipam.MovedPrefix):
				ls.moved = append(ls.moved, a)
				return nil
			case a.Workload == "" || strings.ContainsRune(a.IfName, '/'):
				return nil
			}
			name := a.Workload + "/" + a.IfName
			ls.has[name] = append(ls.has[name], a.IPs)
			if !a.IsHold() {
				return nil
			}
			own, err := ipam.OwnAddrs(tx, s.net.Name, a.IPs)
			if err != nil {
				return err
			}
			ls.holds = append(ls.holds, a)
			ls.own = append(ls.own, own)
			return nil
		})
	})
	return ls, err
}

// syncSticky brings the node's sticky state in line with the workloads'
// records (sticky.go): holds published, expired, given up or turned into
// moved reservations; records binding addresses here that nothing here
// has rolled forward into holds; moved reservations released once no
// record binds their address elsewhere, and made for addresses of this
// node's blocks that a record binds elsewhere.
func (s *Source) syncSticky(ctx context.Context, st ipam.Store, now time.Time) error {
	ls, err := s.readLocalSticky(ctx, st)
	if err != nil {
		return err
	}
	// Listed even when this node's configuration is not sticky (any
	// more) and it keeps nothing sticky: a record may still name it (an
	// attachment that came from one, released by a GC after stickiness
	// was turned off), and only this node can roll that forward and let
	// the address's home node free its reservation (found by the
	// simulator, seed 157124173). One range read of a prefix that is
	// empty on a network never sticky.
	resp, err := s.c.get(ctx, "list sticky records of network "+s.net.Name, s.c.stickyPrefix(s.net.Name), clientv3.WithPrefix())
	if err != nil {
		return err
	}
	records := map[string]*stickyKV{}
	for _, kv := range resp.Kvs {
		var rec stickyRecord
		if json.Unmarshal(kv.Value, &rec) == nil {
			records[string(kv.Key)] = &stickyKV{rec: rec, rev: kv.ModRevision}
		}
	}
	for i, h := range ls.holds {
		key := s.c.stickyKey(s.net.Name, h.Workload, h.IfName)
		if err := s.settleHold(ctx, st, h, ls.own[i], records[key], resp.Header.Revision, now); err != nil {
			return err
		}
	}
	// Addresses bound by more than one record: a workload live twice on
	// a node whose DEL freed an address its record still names (the hold
	// key was taken), then reused for another workload.
	binders := map[netip.Addr]int{}
	for _, cur := range records {
		for _, ip := range cur.rec.IPs {
			binders[ip]++
		}
	}
	elsewhere := map[netip.Addr]string{}
	for key, cur := range records {
		if cur.rec.Node != s.node {
			for _, ip := range cur.rec.IPs {
				elsewhere[ip] = cur.rec.Node
			}
			continue
		}
		w, ifn, ok := s.recordName(key)
		if !ok || slices.ContainsFunc(ls.has[w+"/"+ifn], func(ips []netip.Addr) bool { return slices.Equal(ips, cur.rec.IPs) }) {
			continue
		}
		if slices.ContainsFunc(cur.rec.IPs, func(ip netip.Addr) bool { return binders[ip] > 1 }) {
			// Nothing here backs this record and another binds one of
			// its addresses: it is the stale one. Rolled forward, it
			// would take the address back from a moved reservation
			// while the other record's node uses it.
			if _, err := s.swap(ctx, fmt.Sprintf("delete workload %q's stale record: another record binds its addresses", w), key, cur, nil); err != nil {
				return err
			}
			continue
		}
		if err := s.rollForward(ctx, st, key, w, ifn, cur, now); err != nil {
			return err
		}
	}
	return s.followMoved(ctx, st, ls.moved, elsewhere, now)
}

// rollForward turns a record binding addresses here that nothing here has
// (an ADD killed between its transaction and its adoption, or a store
// lost) into a hold of this node, then records it held here: it then
// expires, or the workload takes it, as any hold.
func (s *Source) rollForward(ctx context.Context, st ipam.Store, key, workload, ifname string, cur *stickyKV, now time.Time) error {
	until := cur.rec.Until
	if !cur.rec.Hold {
		until = now.Add(s.sticky)
	}
	h := ipam.Allocation{Key: ipam.HoldKey(s.net.Name, workload, ifname), IPs: cur.rec.IPs, Created: now.UTC(),
		Workload: workload, HeldUntil: until.UTC(), Published: cur.rev}
	made, stale := false, false
	err := st.Update(ctx, func(tx ipam.Tx) error {
		if _, ok, err := tx.Allocation(h.Key); err != nil || ok {
			return err // a hold of other addresses: settled first
		}
		taken := false
		err := tx.ForEachAllocation(s.net.Name, func(a ipam.Allocation) error {
			taken = taken || a.Workload == workload && a.IfName == ifname && slices.Equal(a.IPs, h.IPs)
			return nil
		})
		if err != nil || taken {
			return err
		}
		// An address this node gave to someone else meanwhile: the
		// record was left by an ADD that never took it (killed before
		// its undo), and nothing here may be bound by it.
		if stale, err = usedByOthers(tx, s.net.Name, h.IPs); err != nil || stale {
			return err
		}
		for _, ip := range h.IPs {
			if err := s.bindHere(tx, ip, workload+"/"+ifname); err != nil {
				return err
			}
		}
		made = true
		return tx.PutAllocation(h)
	})
	if stale {
		_, err = s.swap(ctx, fmt.Sprintf("delete workload %q's stale record: its addresses are used on node %q by others", workload, s.node), key, cur, nil)
		return err
	}
	if err != nil || !made {
		return err
	}
	held := stickyRecord{Node: s.node, IPs: h.IPs, Hold: true, Until: h.HeldUntil}
	_, err = s.swap(ctx, fmt.Sprintf("record workload %q held on node %q", workload, s.node), key, cur, &held)
	return err
}

// usedByOthers reports whether an address of ips is used here by an
// allocation other than a moved reservation (which bindHere ends).
func usedByOthers(tx ipam.Tx, network string, ips []netip.Addr) (bool, error) {
	for _, ip := range ips {
		owner, owned, err := tx.Owner(network, ip)
		if err != nil {
			return false, err
		}
		if owned && !strings.HasPrefix(owner.ContainerID, ipam.MovedPrefix) {
			return true, nil
		}
	}
	return false, nil
}

// bindHere marks ip, which a record binds to this node, used here: a
// bound address, or one of this node's blocks kept reserved (or free)
// while it was away.
func (s *Source) bindHere(tx ipam.Tx, ip netip.Addr, name string) error {
	b, ok, err := tx.BlockContaining(s.net.Name, ip)
	if err != nil {
		return err
	}
	if !ok {
		nb, err := ipam.NewBlock(netip.PrefixFrom(ip, ip.BitLen()), nil)
		if err != nil {
			return err
		}
		nb.Bound = name
		nb.SetUsed(0, true)
		return tx.PutBlock(s.net.Name, nb)
	}
	owner, owned, err := tx.Owner(s.net.Name, ip)
	off, _ := b.Offset(ip)
	switch {
	case err != nil:
		return err
	case owned && strings.HasPrefix(owner.ContainerID, ipam.MovedPrefix):
		return tx.DeleteAllocation(owner)
	case owned || b.IsBound() || b.IsReserved(off):
		return fmt.Errorf("network %q: address %s, bound here by workload %s's record, is held here by %s/%s: %w",
			s.net.Name, ip, name, owner.ContainerID, owner.IfName, ipam.ErrTaken)
	}
	b.SetUsed(off, true)
	return tx.PutBlock(s.net.Name, b)
}

// followMoved releases the moved reservations of addresses no record binds
// elsewhere any more, and reserves free addresses of this node's blocks
// that a record binds elsewhere (a hold lost before it was moved).
// Nothing can bind an address elsewhere without a record that holds it
// already, so an address not bound at the listing stays unbound.
func (s *Source) followMoved(ctx context.Context, st ipam.Store, moved []ipam.Allocation, elsewhere map[netip.Addr]string, now time.Time) error {
	var gone []ipam.Key
	for _, m := range moved {
		if len(m.IPs) == 1 {
			if _, ok := elsewhere[m.IPs[0]]; ok {
				continue
			}
		}
		gone = append(gone, m.Key)
	}
	if len(gone) == 0 && len(elsewhere) == 0 {
		return nil
	}
	return st.Update(ctx, func(tx ipam.Tx) error {
		for _, k := range gone {
			if err := ipam.ReleaseTx(tx, k); err != nil {
				return err
			}
		}
		for ip, node := range elsewhere {
			b, ok, err := tx.BlockContaining(s.net.Name, ip)
			if err != nil {
				return err
			}
			if !ok || b.IsBound() {
				continue
			}
			off, _ := b.Offset(ip)
			if b.IsUsed(off) {
				continue
			}
			m := ipam.Allocation{Key: ipam.MovedKey(s.net.Name, node, ip), IPs: []netip.Addr{ip}, Created: now.UTC()}
			if err := tx.PutAllocation(m); err != nil {
				return err
			}
			b.SetUsed(off, true)
			if err := tx.PutBlock(s.net.Name, b); err != nil {
				return err
			}
		}
		return nil
	})
}

// SettleDue runs the sticky part of the sync when this node keeps a hold
// whose time is up: so holds expire on every node that keeps them, also
// where no node agent knows the network and the runtime sends no GC (the
// plugins call it after their ADD and DEL). One View when none is due;
// etcd being unreachable is no failure (the next call catches up).
func (s *Source) SettleDue(ctx context.Context, st ipam.Store, now time.Time) error {
	due := false
	err := st.View(ctx, func(tx ipam.Tx) error {
		return tx.ForEachHold(s.net.Name, func(h ipam.Allocation) error {
			due = due || !now.Before(h.HeldUntil)
			return nil
		})
	})
	if err != nil || !due {
		return err
	}
	if err := s.syncSticky(ctx, st, now); err != nil && !errors.Is(err, ErrUnavailable) {
		return err
	}
	return nil
}
