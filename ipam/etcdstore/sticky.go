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

// Sticky addresses across nodes. A node's sync publishes, for every
// attachment of a sticky network that names its workload (a StatefulSet
// pod), where the workload is and which addresses it has:
//
//	<prefix>/networks/<net>/sticky/<workload>/<ifname>  {"node":..., "ips":[...], "hold":..., "until":...}
//
// A node starting the workload without a hold of its own reads that record
// and, when it is a hold (the workload was deleted there and the node
// published it: its node agent's sync, or a GC), moves the addresses to
// itself in one transaction that compares the
// record's revision: it rewrites the record with its own name and marks
// each address moved,
//
//	<prefix>/networks/<net>/addr/<ip>  {"node":..., "workload":...}
//
// (or deletes that mark when the address comes back to the node whose
// block holds it). The node the workload left expires its holds only in a
// transaction comparing the same revision, so exactly one of the two wins:
// either the hold expires and the address stays home (the move fails), or
// the move succeeds and the old node keeps the address reserved (a moved
// reservation, ipam.MovedKey) until the mark goes away. No address is
// ever usable on two nodes.

// stickyRecord is the value of a sticky key.
type stickyRecord struct {
	Node  string       `json:"node"`
	IPs   []netip.Addr `json:"ips"`
	Hold  bool         `json:"hold,omitempty"`
	Until time.Time    `json:"until,omitzero"`
}

// addrMark is the value of an addr key: the node using a moved address.
type addrMark struct {
	Node     string `json:"node"`
	Workload string `json:"workload"`
}

func (c *Client) stickyPrefix(net string) string { return c.networksPrefix() + net + "/sticky/" }

func (c *Client) stickyKey(net, workload, ifname string) string {
	return c.stickyPrefix(net) + workload + "/" + ifname
}

func (c *Client) addrKey(net string, ip netip.Addr) string {
	return c.networksPrefix() + net + "/addr/" + ip.String()
}

var _ ipam.StickySource = (*Source)(nil)

// Recall implements ipam.StickySource.
func (s *Source) Recall(ctx context.Context, workload, ifname string) ([]netip.Addr, error) {
	if strings.ContainsRune(ifname, '/') {
		return nil, nil
	}
	ctx, cancel := s.c.bound(ctx)
	defer cancel()
	key := s.c.stickyKey(s.net.Name, workload, ifname)
	resp, err := s.c.get(ctx, fmt.Sprintf("read where workload %q was", workload), key)
	if err != nil || len(resp.Kvs) == 0 {
		return nil, err
	}
	var rec stickyRecord
	if json.Unmarshal(resp.Kvs[0].Value, &rec) != nil || rec.Node == s.node || !rec.Hold || len(rec.IPs) == 0 {
		// Only a hold moves: a workload recorded live elsewhere may still
		// run there (or its delete is not published yet), and two nodes
		// starting it at once must not both get its addresses.
		return nil, nil
	}
	cmps := []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", resp.Kvs[0].ModRevision)}
	mine, _ := json.Marshal(stickyRecord{Node: s.node, IPs: rec.IPs})
	ops := []clientv3.Op{clientv3.OpPut(key, string(mine))}
	mark, _ := json.Marshal(addrMark{Node: s.node, Workload: workload})
	for _, ip := range rec.IPs {
		ak := s.c.addrKey(s.net.Name, ip)
		ar, err := s.c.get(ctx, "read mark of moved address "+ip.String(), ak)
		if err != nil {
			return nil, err
		}
		if len(ar.Kvs) > 0 {
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(ak), "=", ar.Kvs[0].ModRevision))
		} else {
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(ak), "=", 0))
		}
		if s.home(ctx, ip) {
			ops = append(ops, clientv3.OpDelete(ak))
		} else {
			ops = append(ops, clientv3.OpPut(ak, string(mark)))
		}
	}
	tr, err := s.c.txn(ctx, fmt.Sprintf("move workload %q's addresses %v from node %q to node %q", workload, rec.IPs, rec.Node, s.node), cmps, ops, nil)
	if err != nil || !tr.Succeeded {
		return nil, err
	}
	return slices.Clone(rec.IPs), nil
}

// home reports whether ip lies in a block this node holds as a claim (not
// a single address moved here).
func (s *Source) home(ctx context.Context, ip netip.Addr) bool {
	if s.st == nil {
		return false
	}
	home := false
	_ = s.st.View(ctx, func(tx ipam.Tx) error {
		b, ok, err := tx.BlockContaining(s.net.Name, ip)
		home = ok && b.Len() > 1
		return err
	})
	return home
}

// stickyAlloc is an attachment or hold of a workload, as syncSticky sees it.
type stickyAlloc struct {
	ipam.Allocation
	home []bool // per IP: in a claimed block of this node
}

// syncSticky publishes where this node's sticky workloads are, expires
// their holds (only if no other node moved the addresses meanwhile),
// turns holds whose addresses moved into moved reservations, and releases
// moved reservations once their node gave the address back.
func (s *Source) syncSticky(ctx context.Context, st ipam.Store, now time.Time) error {
	allocs, moved, err := s.stickyState(ctx, st)
	if err != nil || (len(allocs) == 0 && len(moved) == 0) {
		return err
	}
	resp, err := s.c.get(ctx, "list sticky workloads of network "+s.net.Name, s.c.stickyPrefix(s.net.Name), clientv3.WithPrefix())
	if err != nil {
		return err
	}
	current := map[string]*stickyKV{}
	for _, kv := range resp.Kvs {
		var rec stickyRecord
		if json.Unmarshal(kv.Value, &rec) == nil {
			current[string(kv.Key)] = &stickyKV{rec: rec, rev: kv.ModRevision}
		}
	}
	// Holds first: a hold given up beside the workload's new attachment
	// (same record key) expires before the new one is published.
	slices.SortStableFunc(allocs, func(x, y stickyAlloc) int {
		switch {
		case x.IsHold() == y.IsHold():
			return 0
		case x.IsHold():
			return -1
		}
		return 1
	})
	for _, a := range allocs {
		key := s.c.stickyKey(s.net.Name, a.Workload, a.IfName)
		if err := s.syncWorkload(ctx, st, a, current[key], now); err != nil {
			return err
		}
		if !a.IsHold() || !now.Before(a.HeldUntil) {
			delete(current, key) // expired or published over: re-read next time
		}
	}
	return s.syncMoved(ctx, st, moved)
}

type stickyKV struct {
	rec stickyRecord
	rev int64
}

// stickyState reads the network's sticky attachments and holds, and its
// moved reservations, in one View.
func (s *Source) stickyState(ctx context.Context, st ipam.Store) ([]stickyAlloc, []ipam.Allocation, error) {
	var allocs []stickyAlloc
	var moved []ipam.Allocation
	err := st.View(ctx, func(tx ipam.Tx) error {
		return tx.ForEachAllocation(s.net.Name, func(a ipam.Allocation) error {
			if strings.HasPrefix(a.ContainerID, ipam.MovedPrefix) {
				moved = append(moved, a)
				return nil
			}
			if a.Workload == "" || strings.ContainsRune(a.IfName, '/') {
				return nil
			}
			sa := stickyAlloc{Allocation: a}
			for _, ip := range a.IPs {
				b, ok, err := tx.BlockContaining(s.net.Name, ip)
				if err != nil {
					return err
				}
				sa.home = append(sa.home, ok && b.Len() > 1)
			}
			allocs = append(allocs, sa)
			return nil
		})
	})
	return allocs, moved, err
}

// syncWorkload brings one workload's record and hold in line.
func (s *Source) syncWorkload(ctx context.Context, st ipam.Store, a stickyAlloc, cur *stickyKV, now time.Time) error {
	key := s.c.stickyKey(s.net.Name, a.Workload, a.IfName)
	switch {
	case cur != nil && cur.rec.Node != s.node:
		if a.IsHold() {
			return s.movedAway(ctx, st, a, cur.rec.Node)
		}
		return nil // live here and recorded elsewhere: the older sandbox; its DEL will come
	case a.IsHold() && !now.Before(a.HeldUntil):
		if cur != nil {
			cmps := []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", cur.rev)}
			ops := []clientv3.Op{clientv3.OpDelete(key)}
			for i, ip := range a.IPs {
				if !a.home[i] {
					ops = append(ops, clientv3.OpDelete(s.c.addrKey(s.net.Name, ip)))
				}
			}
			tr, err := s.c.txn(ctx, fmt.Sprintf("expire workload %q's hold", a.Workload), cmps, ops, nil)
			if err != nil || !tr.Succeeded {
				return err // moved meanwhile: the next sync sees it
			}
		}
		return releaseHold(ctx, st, a)
	}
	want := stickyRecord{Node: s.node, IPs: a.IPs, Hold: a.IsHold(), Until: a.HeldUntil}
	if cur != nil && sameRecord(cur.rec, want) {
		return nil
	}
	val, _ := json.Marshal(want)
	cmp := clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
	if cur != nil {
		cmp = clientv3.Compare(clientv3.ModRevision(key), "=", cur.rev)
	}
	_, err := s.c.txn(ctx, fmt.Sprintf("publish where workload %q is", a.Workload), []clientv3.Cmp{cmp},
		[]clientv3.Op{clientv3.OpPut(key, string(val))}, nil)
	return err
}

func sameRecord(a, b stickyRecord) bool {
	return a.Node == b.Node && a.Hold == b.Hold && a.Until.Equal(b.Until) && slices.Equal(a.IPs, b.IPs)
}

// movedAway replaces the hold of a workload that another node took over:
// its addresses of this node's blocks stay reserved for that node (moved
// reservations); single addresses moved here before are dropped.
func (s *Source) movedAway(ctx context.Context, st ipam.Store, a stickyAlloc, to string) error {
	return st.Update(ctx, func(tx ipam.Tx) error {
		if err := tx.DeleteAllocation(a.Key); err != nil {
			return err
		}
		for i, ip := range a.IPs {
			if a.home[i] {
				m := ipam.Allocation{Key: ipam.MovedKey(s.net.Name, to, ip), IPs: []netip.Addr{ip}, Created: time.Now().UTC(), Workload: a.Workload}
				if err := tx.PutAllocation(m); err != nil {
					return err
				}
				continue
			}
			if err := dropSingle(tx, s.net.Name, ip); err != nil {
				return err
			}
		}
		return nil
	})
}

// releaseHold frees an expired hold, dropping single addresses that had
// been moved here.
func releaseHold(ctx context.Context, st ipam.Store, a stickyAlloc) error {
	return st.Update(ctx, func(tx ipam.Tx) error {
		if err := ipam.ReleaseTx(tx, a.Key); err != nil {
			return err
		}
		for i, ip := range a.IPs {
			if !a.home[i] {
				if err := dropSingle(tx, a.Network, ip); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// dropSingle forgets the single-address block of ip, whose address is
// free again or used elsewhere.
func dropSingle(tx ipam.Tx, network string, ip netip.Addr) error {
	b, ok, err := tx.BlockContaining(network, ip)
	if err != nil || !ok || b.Len() != 1 {
		return err
	}
	return tx.DeleteBlock(network, b.Prefix)
}

// syncMoved releases moved reservations whose address is no longer marked
// as used elsewhere (its workload's hold expired there, or it came home).
// The mark may name another node than the reservation: the workload moved
// on; the address stays reserved while any node uses it.
func (s *Source) syncMoved(ctx context.Context, st ipam.Store, moved []ipam.Allocation) error {
	var gone []ipam.Key
	for _, m := range moved {
		resp, err := s.c.get(ctx, "read mark of moved address "+m.IfName, s.c.addrKey(s.net.Name, m.IPs[0]))
		if err != nil {
			return err
		}
		if len(resp.Kvs) == 0 {
			gone = append(gone, m.Key)
		}
	}
	return releaseKeys(ctx, st, gone)
}

// syncMarks gives back the addresses marked in etcd as moved to this node
// that nothing here uses any more: no attachment or hold of this node
// owns the address, and no sticky record places it here. That happens when
// a workload's sandbox holding a moved address is deleted after another
// sandbox of the workload left its hold (holdTx keeps the older hold), and
// when an ADD is killed between the move in etcd and its local adoption.
// Without it the home node's moved reservation and this node's
// single-address block outlive every workload.
//
// The single-address block goes first, under the store's lock and only if
// still unused, so that nothing here allocates the address once the mark
// is gone; then the mark, only if nobody moved the address since it was
// read (a Recall rewrites the mark). The home node frees its reservation
// at its next sync (syncMoved).
func (s *Source) syncMarks(ctx context.Context, st ipam.Store) error {
	pfx := s.c.networksPrefix() + s.net.Name + "/addr/"
	resp, err := s.c.get(ctx, "list marks of moved addresses of network "+s.net.Name, pfx, clientv3.WithPrefix())
	if err != nil {
		return err
	}
	for _, kv := range resp.Kvs {
		var mark addrMark
		ip, perr := netip.ParseAddr(strings.TrimPrefix(string(kv.Key), pfx))
		if perr != nil || json.Unmarshal(kv.Value, &mark) != nil || mark.Node != s.node {
			continue
		}
		placed, err := s.placedHere(ctx, mark.Workload, ip)
		if err != nil {
			return err
		}
		if placed {
			continue
		}
		unused := false
		err = st.Update(ctx, func(tx ipam.Tx) error {
			if _, owned, err := tx.Owner(s.net.Name, ip); err != nil || owned {
				return err
			}
			b, ok, err := tx.BlockContaining(s.net.Name, ip)
			if err != nil || (ok && b.Len() > 1) {
				return err // in a block of this node's own: not a move
			}
			unused = true
			if !ok {
				return nil
			}
			return tx.DeleteBlock(s.net.Name, b.Prefix)
		})
		if err != nil {
			return err
		}
		if !unused {
			continue
		}
		cmps := []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(string(kv.Key)), "=", kv.ModRevision)}
		if _, err := s.c.txn(ctx, fmt.Sprintf("give back address %s, moved to node %q and unused there", ip, s.node), cmps,
			[]clientv3.Op{clientv3.OpDelete(string(kv.Key))}, nil); err != nil {
			return err
		}
	}
	return nil
}

// placedHere reports whether a sticky record of workload places ip on
// this node (an attachment or hold here, or a move whose local adoption
// is under way).
func (s *Source) placedHere(ctx context.Context, workload string, ip netip.Addr) (bool, error) {
	resp, err := s.c.get(ctx, fmt.Sprintf("read where workload %q is", workload), s.c.stickyKey(s.net.Name, workload, ""), clientv3.WithPrefix())
	if err != nil {
		return false, err
	}
	for _, kv := range resp.Kvs {
		var rec stickyRecord
		if json.Unmarshal(kv.Value, &rec) == nil && rec.Node == s.node && slices.Contains(rec.IPs, ip) {
			return true, nil
		}
	}
	return false, nil
}

// movedHere reports whether single address p (a block of one address with
// no claim) is marked as moved to this node.
func (s *Source) movedHere(ctx context.Context, p netip.Prefix) (bool, error) {
	if p.Bits() != p.Addr().BitLen() {
		return false, nil
	}
	resp, err := s.c.get(ctx, "read mark of moved address "+p.Addr().String(), s.c.addrKey(s.net.Name, p.Addr()))
	if err != nil || len(resp.Kvs) == 0 {
		return false, err
	}
	var mark addrMark
	return json.Unmarshal(resp.Kvs[0].Value, &mark) == nil && mark.Node == s.node, nil
}

// HoldIsMine implements ipam.StickySource: the workload's record names
// this node, or there is none (never published, or given back since by
// the node it had moved to, which deleted its marks) and every address of
// the hold is still this node's: in a block it claims, or, for an address
// moved here, marked in etcd as moved to this node. Without a mark the
// address went home and its hold there may have expired since: the
// address is free on its home node, and this node's stale hold must not
// be taken (found by the soak: TestStaleStickyHoldAfterExpiry).
func (s *Source) HoldIsMine(ctx context.Context, workload, ifname string) (bool, error) {
	if strings.ContainsRune(ifname, '/') {
		return true, nil
	}
	ctx, cancel := s.c.bound(ctx)
	defer cancel()
	resp, err := s.c.get(ctx, fmt.Sprintf("read where workload %q is", workload), s.c.stickyKey(s.net.Name, workload, ifname))
	if err != nil {
		return false, err
	}
	if len(resp.Kvs) > 0 {
		var rec stickyRecord
		if err := json.Unmarshal(resp.Kvs[0].Value, &rec); err != nil {
			return false, fmt.Errorf("sticky record of %q: %w", workload, err)
		}
		return rec.Node == s.node, nil
	}
	ips, err := s.holdIPs(ctx, workload, ifname)
	if err != nil {
		return false, err
	}
	for _, ip := range ips {
		if s.home(ctx, ip) {
			continue
		}
		if here, err := s.movedHere(ctx, netip.PrefixFrom(ip, ip.BitLen())); err != nil || !here {
			return false, err
		}
	}
	return true, nil
}

// holdIPs returns the addresses of this node's hold for workload on
// ifname (none without a store or a hold).
func (s *Source) holdIPs(ctx context.Context, workload, ifname string) ([]netip.Addr, error) {
	if s.st == nil {
		return nil, nil
	}
	var ips []netip.Addr
	err := s.st.View(ctx, func(tx ipam.Tx) error {
		h, ok, err := tx.Allocation(ipam.HoldKey(s.net.Name, workload, ifname))
		if ok {
			ips = slices.Clone(h.IPs)
		}
		return err
	})
	return ips, err
}
