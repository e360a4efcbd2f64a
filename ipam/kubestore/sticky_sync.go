package kubestore

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/medianet/medianet/ipam"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// localSticky is what the sync needs of the node's sticky state, read in
// one View.
type localSticky struct {
	holds []ipam.Allocation
	own   [][]bool // per hold, per address: in a usable block this node claims
	// has: workload and ifname -> address sets of its attachments and hold.
	has   map[stickyID][][]netip.Addr
	moved []ipam.Allocation
}

func (s *Source) readLocalSticky(ctx context.Context, st ipam.Store) (localSticky, error) {
	ls := localSticky{has: map[stickyID][][]netip.Addr{}}
	err := st.View(ctx, func(tx ipam.Tx) error {
		return tx.ForEachAllocation(s.net.Name, func(a ipam.Allocation) error {
			switch {
			case strings.HasPrefix(a.ContainerID, ipam.MovedPrefix):
				ls.moved = append(ls.moved, a)
				return nil
			case a.Workload == "" || strings.ContainsRune(a.IfName, '/'):
				return nil
			}
			id := stickyID{a.Workload, a.IfName}
			ls.has[id] = append(ls.has[id], a.IPs)
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

// records lists the network's IPAMSticky objects in one list (one
// version of the API), with the stamp of that version.
func (s *Source) records(ctx context.Context) (map[stickyID]*stickyKV, int64, error) {
	ctx, cancel := s.c.bound(ctx)
	defer cancel()
	l, err := s.c.dyn.Resource(stickiesGVR).List(ctx, metav1.ListOptions{LabelSelector: NetworkLabel + "=" + NetworkName(s.net.Name)})
	if err = s.c.wrap(fmt.Sprintf("list IPAMStickies of network %q", s.net.Name), err); err != nil {
		return nil, 0, err
	}
	out := map[stickyID]*stickyKV{}
	for i := range l.Items {
		net, id, kv, err := stickyFrom(&l.Items[i])
		if err != nil || net != s.net.Name || l.Items[i].GetName() != StickyName(net, id.workload, id.ifname) {
			continue // not a record this network's nodes wrote
		}
		out[id] = kv
	}
	return out, stampOf(l.GetResourceVersion()), nil
}

// syncSticky brings the node's sticky state in line with the workloads'
// records (sticky.go), as etcdstore's syncSticky: holds published,
// expired, given up or turned into moved reservations; records binding
// addresses here that nothing here has rolled forward into holds; moved
// reservations released once no record binds their address elsewhere,
// and made for addresses of this node's blocks that a record binds
// elsewhere. It lists the records also when this node keeps nothing
// sticky (a record may still name it).
func (s *Source) syncSticky(ctx context.Context, st ipam.Store, now time.Time) error {
	ls, err := s.readLocalSticky(ctx, st)
	if err != nil {
		return err
	}
	records, seen, err := s.records(ctx)
	if err != nil {
		return err
	}
	for i, h := range ls.holds {
		if err := s.settleHold(ctx, st, h, ls.own[i], records[stickyID{h.Workload, h.IfName}], seen, now); err != nil {
			return err
		}
	}
	binders := map[netip.Addr]int{}
	for _, cur := range records {
		for _, ip := range cur.rec.IPs {
			binders[ip]++
		}
	}
	elsewhere := map[netip.Addr]string{}
	for id, cur := range records {
		if cur.rec.Node != s.node {
			for _, ip := range cur.rec.IPs {
				elsewhere[ip] = cur.rec.Node
			}
			continue
		}
		if slices.ContainsFunc(ls.has[id], func(ips []netip.Addr) bool { return slices.Equal(ips, cur.rec.IPs) }) {
			continue
		}
		if slices.ContainsFunc(cur.rec.IPs, func(ip netip.Addr) bool { return binders[ip] > 1 }) {
			// Nothing here backs this record and another binds one of
			// its addresses: it is the stale one.
			if _, _, err := s.swap(ctx, fmt.Sprintf("delete workload %q's stale record: another record binds its addresses", id.workload), id, cur, nil); err != nil {
				return err
			}
			continue
		}
		if err := s.rollForward(ctx, st, id, cur, now); err != nil {
			return err
		}
	}
	return s.followMoved(ctx, st, ls.moved, elsewhere, now)
}

// rollForward turns a record binding addresses here that nothing here has
// (an ADD killed between its write and its adoption, or a store lost)
// into a hold of this node, then records it held here.
func (s *Source) rollForward(ctx context.Context, st ipam.Store, id stickyID, cur *stickyKV, now time.Time) error {
	until := cur.rec.Until
	if !cur.rec.Hold {
		until = now.Add(s.cfg.Sticky)
	}
	h := ipam.Allocation{Key: ipam.HoldKey(s.net.Name, id.workload, id.ifname), IPs: cur.rec.IPs, Created: now.UTC(),
		Workload: id.workload, HeldUntil: until.UTC(), Published: cur.stamp()}
	made, stale := false, false
	err := st.Update(ctx, func(tx ipam.Tx) error {
		if _, ok, err := tx.Allocation(h.Key); err != nil || ok {
			return err // a hold of other addresses: settled first
		}
		taken := false
		err := tx.ForEachAllocation(s.net.Name, func(a ipam.Allocation) error {
			taken = taken || a.Workload == id.workload && a.IfName == id.ifname && slices.Equal(a.IPs, h.IPs)
			return nil
		})
		if err != nil || taken {
			return err
		}
		if stale, err = usedByOthers(tx, s.net.Name, h.IPs); err != nil || stale {
			return err
		}
		for _, ip := range h.IPs {
			if err := s.bindHere(tx, ip, id.workload+"/"+id.ifname); err != nil {
				return err
			}
		}
		made = true
		return tx.PutAllocation(h)
	})
	if stale {
		_, _, err = s.swap(ctx, fmt.Sprintf("delete workload %q's stale record: its addresses are used on node %q by others", id.workload, s.node), id, cur, nil)
		return err
	}
	if err != nil || !made {
		return err
	}
	held := stickyRecord{Node: s.node, IPs: h.IPs, Hold: true, Until: h.HeldUntil}
	_, _, err = s.swap(ctx, fmt.Sprintf("record workload %q held on node %q", id.workload, s.node), id, cur, &held)
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
// that a record binds elsewhere.
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
// whose time is up, so holds expire on every node that keeps them (the
// plugins call it after their ADD and DEL). One View when none is due;
// the API server being unreachable is no failure.
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

// boundElsewhere returns, per block, the addresses in it that records
// bind to other nodes, as moved reservations to make: theirs, whoever
// claims the block (a workload moved away from a node whose blocks were
// reclaimed by force).
func (s *Source) boundElsewhere(ctx context.Context, blocks []netip.Prefix) (map[netip.Prefix][]ipam.ForeignAddrs, error) {
	records, _, err := s.records(ctx)
	if err != nil {
		return nil, err
	}
	out := map[netip.Prefix][]ipam.ForeignAddrs{}
	for _, kv := range records {
		if kv.rec.Node == s.node {
			continue
		}
		for _, b := range blocks {
			var in []netip.Addr
			for _, ip := range kv.rec.IPs {
				if b.Contains(ip) {
					in = append(in, ip)
				}
			}
			if len(in) > 0 {
				out[b] = append(out[b], ipam.ForeignAddrs{Block: b, Node: kv.rec.Node, Addrs: in, Moved: true})
			}
		}
	}
	return out, nil
}

// noteBound records, for TakeForeign, the addresses of block b, just
// claimed, that records bind to other nodes. When they cannot be read
// the claim fails: a block whose bound addresses are unknown must not be
// handed out from (the claim stays, and the sync's adoption reads them).
func (s *Source) noteBound(ctx context.Context, b netip.Prefix) error {
	bound, err := s.boundElsewhere(ctx, []netip.Prefix{b})
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.foreign = append(s.foreign, bound[b]...)
	s.mu.Unlock()
	return nil
}

// TakeForeign implements ipam.ForeignReporter: addresses of blocks Next
// and Containing claimed since the last call that records bind to other
// nodes.
func (s *Source) TakeForeign() []ipam.ForeignAddrs {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.foreign
	s.foreign = nil
	return out
}

var _ ipam.ForeignReporter = (*Source)(nil)

func blockCIDRs(bs []Block) []netip.Prefix {
	out := make([]netip.Prefix, len(bs))
	for i, b := range bs {
		out[i] = b.CIDR
	}
	return out
}

// reserveBound marks the addresses of block b that records bind to other
// nodes used, each with a moved reservation, as the allocator does with
// TakeForeign's: for blocks the sync adopts.
func reserveBound(tx ipam.Tx, network string, b *ipam.Block, bound []ipam.ForeignAddrs, now time.Time) error {
	for _, f := range bound {
		for _, ip := range f.Addrs {
			off, ok := b.Offset(ip)
			if !ok || b.IsUsed(off) {
				continue
			}
			b.SetUsed(off, true)
			mk := ipam.Allocation{Key: ipam.MovedKey(network, f.Node, ip), IPs: []netip.Addr{ip}, Created: now.UTC()}
			if err := tx.PutAllocation(mk); err != nil {
				return err
			}
		}
	}
	return nil
}
