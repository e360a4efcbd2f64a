package ipam

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Sticky addresses: when Config.Sticky is set, releasing an attachment
// that names its workload turns its allocation into a hold (HoldKey) kept
// until HeldUntil. The addresses stay Used, so nobody else gets them; the
// workload coming back (same Workload, same interface) takes them again.
// Expired holds are freed by the next allocation or GC.
//
// With a StickySource (etcd), another node may have moved a hold's
// addresses away, so the allocator never frees a hold itself: it only
// marks one given up as expired, and the source's sync frees it through
// etcd (the transaction a move also compares). A local hold is taken only
// once the source confirms it is still this node's (HoldIsMine).

// takeHold gives req the addresses of its workload's hold, if it has one
// and req asks for no other address. It reports false when there is no
// hold to take.
func (a *Allocator) takeHold(tx Tx, req Request, want []netip.Addr, skip bool) ([]netip.Addr, bool, error) {
	if req.Workload == "" || skip {
		return nil, false, nil
	}
	hk := HoldKey(a.cfg.Network, req.Workload, req.IfName)
	h, ok, err := tx.Allocation(hk)
	if err != nil || !ok {
		return nil, false, err
	}
	for _, w := range want {
		if w.IsValid() && !slices.Contains(h.IPs, w) {
			// An explicit request wins: give the hold up and allocate anew.
			return nil, false, a.giveUp(tx, h)
		}
	}
	if err := a.usable(tx, h.IPs); err != nil {
		return nil, false, a.giveUp(tx, h)
	}
	if err := tx.DeleteAllocation(hk); err != nil {
		return nil, false, err
	}
	return slices.Clone(h.IPs), true, nil
}

// giveUp frees hold h, or with a StickySource marks it expired for the
// source's sync to free through etcd.
func (a *Allocator) giveUp(tx Tx, h Allocation) error {
	if _, ok := a.src.(StickySource); !ok {
		_, _, err := releaseTx(tx, h.Key)
		return err
	}
	h.HeldUntil = a.Now().UTC()
	return tx.PutAllocation(h)
}

// usable reports whether every address of a hold may still be handed out
// under the current configuration: in a usable held block, not reserved.
func (a *Allocator) usable(tx Tx, ips []netip.Addr) error {
	for _, ip := range ips {
		if _, ok := a.cfg.SubnetOf(ip); !ok {
			return fmt.Errorf("%s is outside the network's subnets", ip)
		}
		b, ok, err := tx.BlockContaining(a.cfg.Network, ip)
		if err != nil {
			return err
		}
		if !ok || !b.Usable() {
			return fmt.Errorf("%s is in no usable held block", ip)
		}
		if off, _ := b.Offset(ip); b.IsReserved(off) {
			return fmt.Errorf("%s is now reserved", ip)
		}
	}
	return nil
}

// expireHolds frees the holds whose time is up, unless the source moves
// addresses between nodes (StickySource): its sync expires them.
func (a *Allocator) expireHolds(tx Tx) error {
	if _, ok := a.src.(StickySource); ok {
		return nil
	}
	now := a.Now()
	var expired []Key
	err := tx.ForEachHold(a.cfg.Network, func(h Allocation) error {
		if !now.Before(h.HeldUntil) {
			expired = append(expired, h.Key)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range expired {
		if _, _, err := releaseTx(tx, k); err != nil {
			return err
		}
	}
	return nil
}

// recall asks a StickySource for req's workload's addresses held on
// another node, outside any transaction, and records a single-address
// block for each that lies in no held block. It returns the addresses to
// request, or none (no hold elsewhere, nothing movable, or the source
// failing: the workload then gets a new address).
//
// skipHold is true when the node has a hold for the workload that the
// source could not confirm as still its own (moved to another node since,
// or etcd unreachable): the allocator must not take it (it stays reserved
// until the sync sorts it out) and gives the workload a new address.
func (a *Allocator) recall(ctx context.Context, req Request) (ips []netip.Addr, skipHold bool) {
	ss, ok := a.src.(StickySource)
	if !ok || a.cfg.Sticky <= 0 || req.Workload == "" {
		return nil, false
	}
	var hold, attached bool
	_ = a.st.View(ctx, func(tx Tx) error {
		var err error
		if _, hold, err = tx.Allocation(HoldKey(a.cfg.Network, req.Workload, req.IfName)); err != nil {
			return err
		}
		_, attached, err = tx.Allocation(Key{Network: a.cfg.Network, ContainerID: req.ContainerID, IfName: req.IfName})
		return err
	})
	switch {
	case attached:
		return nil, false
	case hold:
		mine, err := ss.HoldIsMine(ctx, req.Workload, req.IfName)
		return nil, err != nil || !mine
	case len(req.IPs) > 0:
		return nil, false
	}
	ips, err := ss.Recall(ctx, req.Workload, req.IfName)
	if err != nil || len(ips) == 0 {
		return nil, false
	}
	err = a.st.Update(ctx, func(tx Tx) error {
		for _, ip := range ips {
			if err := a.adoptSingle(tx, ip); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, false
	}
	return ips, false
}

// adoptSingle records a single-address block for ip, moved here from
// another node's block, unless a held block holds it already.
func (a *Allocator) adoptSingle(tx Tx, ip netip.Addr) error {
	if _, ok, err := tx.BlockContaining(a.cfg.Network, ip); err != nil || ok {
		if err != nil {
			return err
		}
		// Back home in this node's own block: drop the reservation kept
		// while another node used it.
		owner, ok, err := tx.Owner(a.cfg.Network, ip)
		if err != nil || !ok || !strings.HasPrefix(owner.ContainerID, MovedPrefix) {
			return err
		}
		_, _, err = releaseTx(tx, owner)
		return err
	}
	s, ok := a.cfg.SubnetOf(ip)
	if !ok {
		return fmt.Errorf("moved address %s is outside the subnets: %w", ip, ErrOutOfRange)
	}
	b, err := NewBlock(netip.PrefixFrom(ip, ip.BitLen()), a.cfg.Reserved(s))
	if err != nil {
		return err
	}
	return tx.PutBlock(a.cfg.Network, b)
}

// holdTx turns the allocation a into its workload's hold until the sticky
// period ends, replacing an older hold of the same workload and interface.
// With a StickySource an older hold is freed only by the sync, through
// etcd: the allocation is then released without a hold of its own.
func (a *Allocator) holdTx(tx Tx, al Allocation) error {
	hk := HoldKey(al.Network, al.Workload, al.IfName)
	if _, ok := a.src.(StickySource); ok {
		if _, older, err := tx.Allocation(hk); err != nil || older {
			if err == nil {
				_, _, err = releaseTx(tx, al.Key)
			}
			return err
		}
	}
	if _, _, err := releaseTx(tx, hk); err != nil {
		return err
	}
	if err := tx.DeleteAllocation(al.Key); err != nil {
		return err
	}
	h := al
	h.Key = hk
	h.HeldUntil = a.Now().Add(a.cfg.Sticky).UTC()
	return tx.PutAllocation(h)
}

// describeOwner names the holder of an address for messages: an
// attachment, or a workload's sticky hold.
func describeOwner(tx Tx, k Key) string {
	a, ok, err := tx.Allocation(k)
	switch {
	case err != nil || !ok:
		return fmt.Sprintf("%s/%s", k.ContainerID, k.IfName)
	case a.IsHold():
		return fmt.Sprintf("workload %q's sticky hold (until %s)", a.Workload, a.HeldUntil.Format("2006-01-02T15:04:05Z"))
	case a.Workload != "":
		return fmt.Sprintf("%s/%s (workload %q)", k.ContainerID, k.IfName, a.Workload)
	}
	return fmt.Sprintf("%s/%s", k.ContainerID, k.IfName)
}
