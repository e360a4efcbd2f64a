package ipam

import (
	"fmt"
	"net/netip"
	"slices"
)

// Sticky addresses: when Config.Sticky is set, releasing an attachment
// that names its workload turns its allocation into a hold (HoldKey) kept
// until HeldUntil. The addresses stay Used, so nobody else gets them; the
// workload coming back (same Workload, same interface) takes them again.
// Expired holds are freed by the next allocation or GC.

// takeHold gives req the addresses of its workload's hold, if it has one
// and req asks for no other address. It reports false when there is no
// hold to take.
func (a *Allocator) takeHold(tx Tx, req Request, want []netip.Addr) ([]netip.Addr, bool, error) {
	if req.Workload == "" {
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
			_, _, err := releaseTx(tx, hk)
			return nil, false, err
		}
	}
	if err := a.usable(tx, h.IPs); err != nil {
		_, _, rerr := releaseTx(tx, hk)
		if rerr != nil {
			return nil, false, rerr
		}
		return nil, false, nil
	}
	if err := tx.DeleteAllocation(hk); err != nil {
		return nil, false, err
	}
	return slices.Clone(h.IPs), true, nil
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

// expireHolds frees the holds whose time is up.
func (a *Allocator) expireHolds(tx Tx) error {
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

// holdTx turns the allocation a into its workload's hold until the sticky
// period ends, replacing an older hold of the same workload and interface.
func (a *Allocator) holdTx(tx Tx, al Allocation) error {
	hk := HoldKey(al.Network, al.Workload, al.IfName)
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
