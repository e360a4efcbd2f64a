package ipam

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Sticky addresses: when Config.Sticky is set, releasing an attachment
// that names its workload turns its allocation into a hold (HoldKey) kept
// until HeldUntil. The addresses stay Used, so nobody else gets them; the
// workload coming back (same Workload, same interface) takes them again.
//
// Without a StickySource (one node, static ranges) the store is the only
// authority: expired holds are freed by the next allocation or GC.
//
// With a StickySource (etcd), which node a workload's addresses are bound
// to is decided by one record in the cluster store, changed only by
// compare-and-swap transactions (docs/design.md, "Sticky addresses"). The
// local store follows: a hold becomes an attachment again only after the
// source has set the record to "live here" from the revision it read
// (Resume), and is freed only by the source's sync, after the record went
// away. The allocator never frees such a hold itself.

// StickySource is implemented by cluster sources that decide, for each
// sticky workload, which node its addresses are bound to (etcd).
type StickySource interface {
	// Resume decides, in one transaction of the cluster store, that the
	// workload's addresses on ifname are live on this node, and returns
	// them. local describes this node's hold for the workload (nil when
	// it has none). Resumed.IPs is empty when there is nothing to take:
	// no record, or one binding the workload elsewhere live (it may still
	// run there). An error means the cluster store could not decide: the
	// workload gets a new address and its hold here stays. now is the
	// allocator's clock, against which holds' expiry is judged.
	Resume(ctx context.Context, workload, ifname string, local *LocalHold, now time.Time) (Resumed, error)
	// PublishHold brings this node's hold h in line with the workload's
	// record, after the transaction that made h (a DEL): the record says
	// "held here until h.HeldUntil", or, when the record binds the
	// workload elsewhere or to other addresses, h is given up here.
	// Errors leave h as it is: the source's sync publishes it later.
	PublishHold(ctx context.Context, h Allocation, now time.Time) error
}

// LocalHold is what Resume needs of this node's hold.
type LocalHold struct {
	IPs []netip.Addr
	// Own: every address lies in a block this node claims (not a bound
	// address, see Block.Bound).
	Own   bool
	Until time.Time
	// Published as in Allocation.
	Published int64
}

// Resumed is Resume's decision.
type Resumed struct {
	// IPs are the workload's addresses, now recorded live on this node.
	IPs []netip.Addr
	// Moved: they came from another node's hold; this node must adopt
	// them (bound addresses, or its own addresses it kept reserved while
	// the workload was away). Otherwise they are local's.
	Moved bool
	// Until is the HeldUntil of the hold they came from.
	Until time.Time
	// Published is local's, when they are local's.
	Published int64
	// Undo puts the workload's record back as it was before Resume
	// recorded it live here, if it is still as Resume wrote it. Allocate
	// calls it when the decision was not used (the adoption found the
	// hold changed, or failed): a record left "live here" over nothing
	// would outlive a hold expired meanwhile and bind an address this
	// node hands to someone else (found by the simulator, seed
	// 1000000163). nil: nothing to undo.
	Undo func(context.Context) error
}

// errRetry aborts a transaction whose view of the workload's hold changed
// since the source decided (the sync rolled the record forward): Allocate
// asks the source again.
var errRetry = errors.New("sticky state changed, decide again")

// takeHold gives req the addresses of its workload's hold without a
// StickySource, if it has one and req asks for no other address. It
// reports false when there is no hold to take.
func (a *Allocator) takeHold(tx Tx, req Request, want []netip.Addr) ([]netip.Addr, time.Time, bool, error) {
	if _, cluster := a.src.(StickySource); req.Workload == "" || cluster {
		// With a cluster source a hold is taken only through it, also
		// while this node's configuration turns stickiness off (a
		// rollout): another node may still move it.
		return nil, time.Time{}, false, nil
	}
	hk := HoldKey(a.cfg.Network, req.Workload, req.IfName)
	h, ok, err := tx.Allocation(hk)
	if err != nil || !ok {
		return nil, time.Time{}, false, err
	}
	for _, w := range want {
		if w.IsValid() && !slices.Contains(h.IPs, w) {
			// An explicit request wins: give the hold up and allocate anew.
			_, _, err := releaseTx(tx, hk)
			return nil, time.Time{}, false, err
		}
	}
	if err := a.usable(tx, h.IPs); err != nil {
		_, _, err := releaseTx(tx, hk)
		return nil, time.Time{}, false, err
	}
	if err := tx.DeleteAllocation(hk); err != nil {
		return nil, time.Time{}, false, err
	}
	return slices.Clone(h.IPs), h.HeldUntil, true, nil
}

func (a *Allocator) stickySource() StickySource {
	if ss, ok := a.src.(StickySource); ok && a.cfg.Sticky > 0 {
		return ss
	}
	return nil
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

// expireHolds frees the holds whose time is up, unless a StickySource
// decides: its sync expires them through the cluster store.
func (a *Allocator) expireHolds(tx Tx) error {
	if _, cluster := a.src.(StickySource); cluster {
		return nil // whatever this node's period: the source's sync decides
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

// resume asks the StickySource, outside any transaction, whether req's
// workload gets its sticky addresses here. nil: allocate as usual (no
// source, no workload, already attached, an explicit address asked for
// that the hold lacks, or nothing to take).
func (a *Allocator) resume(ctx context.Context, req Request) (*Resumed, error) {
	ss := a.stickySource()
	if ss == nil || req.Workload == "" || strings.ContainsRune(req.IfName, '/') {
		return nil, nil
	}
	var local *LocalHold
	var attached bool
	err := a.st.View(ctx, func(tx Tx) error {
		var err error
		if _, attached, err = tx.Allocation(Key{Network: a.cfg.Network, ContainerID: req.ContainerID, IfName: req.IfName}); err != nil || attached {
			return err
		}
		h, ok, err := tx.Allocation(HoldKey(a.cfg.Network, req.Workload, req.IfName))
		if err != nil || !ok || !a.Now().Before(h.HeldUntil) {
			return err // an expired hold is the sync's to free
		}
		own, err := OwnAddrs(tx, a.cfg.Network, h.IPs)
		local = &LocalHold{IPs: h.IPs, Own: !slices.Contains(own, false), Until: h.HeldUntil, Published: h.Published}
		return err
	})
	if err != nil || attached {
		return nil, err
	}
	if len(req.IPs) > 0 && (local == nil || slices.ContainsFunc(req.IPs, func(ip netip.Addr) bool { return !slices.Contains(local.IPs, ip) })) {
		return nil, nil // an explicit request wins; the hold stays for the sync
	}
	r, err := ss.Resume(ctx, req.Workload, req.IfName, local, a.Now())
	if err != nil || len(r.IPs) == 0 {
		// Undecided (the cluster store unreachable) or nothing to take:
		// a new address, the safe side.
		return nil, nil
	}
	return &r, nil
}

// OwnAddrs reports, per address, whether it lies in a usable block this
// node claims: not a bound address (Block.Bound), not a lost block.
func OwnAddrs(tx Tx, network string, ips []netip.Addr) ([]bool, error) {
	own := make([]bool, len(ips))
	for i, ip := range ips {
		b, ok, err := tx.BlockContaining(network, ip)
		if err != nil {
			return nil, err
		}
		own[i] = ok && !b.IsBound() && b.Usable()
	}
	return own, nil
}

// adopt makes the attachment out of what the source decided, in the
// transaction: this node's hold taken, or addresses moved here adopted.
func (a *Allocator) adopt(tx Tx, key Key, req Request, r *Resumed) (Allocation, error) {
	out := Allocation{Key: key, Created: a.Now().UTC(), Workload: req.Workload, IPs: slices.Clone(r.IPs), Resumed: r.Until.UTC()}
	hk := HoldKey(a.cfg.Network, req.Workload, req.IfName)
	h, held, err := tx.Allocation(hk)
	if err != nil {
		return out, err
	}
	switch {
	case held && slices.Equal(h.IPs, r.IPs):
		// The hold is (again) here: ours to take when the source said
		// so for this very hold; if it appeared or was published since
		// (the sync rolled a move forward into a hold, or told the
		// cluster store it is held here), decide again.
		if r.Moved || !h.HeldUntil.Equal(r.Until) || h.Published != r.Published {
			return out, errRetry
		}
		if err := tx.DeleteAllocation(hk); err != nil {
			return out, err
		}
		return out, tx.PutAllocation(out)
	case !r.Moved:
		return out, errRetry // the hold went since (its sync): decide again
	case held:
		// A stale hold of other addresses: the record no longer binds
		// them here; the sync gives them up.
		h.HeldUntil = a.Now().UTC()
		if err := tx.PutAllocation(h); err != nil {
			return out, err
		}
	}
	for _, ip := range r.IPs {
		if err := a.adoptAddr(tx, ip, req); err != nil {
			return out, err
		}
	}
	return out, tx.PutAllocation(out)
}

// adoptAddr marks ip, moved here, used for req's workload: in a block of
// this node's own, where it was kept reserved (or free) while away, or as
// a bound address.
func (a *Allocator) adoptAddr(tx Tx, ip netip.Addr, req Request) error {
	b, ok, err := tx.BlockContaining(a.cfg.Network, ip)
	if err != nil {
		return err
	}
	if !ok {
		s, ok := a.cfg.SubnetOf(ip)
		if !ok {
			return fmt.Errorf("network %q: moved address %s is outside the subnets: %w", a.cfg.Network, ip, ErrOutOfRange)
		}
		nb, err := NewBlock(netip.PrefixFrom(ip, ip.BitLen()), a.cfg.Reserved(s))
		if err != nil {
			return err
		}
		nb.Bound = req.Workload + "/" + req.IfName
		nb.SetUsed(0, true)
		return tx.PutBlock(a.cfg.Network, nb)
	}
	off, _ := b.Offset(ip)
	owner, owned, err := tx.Owner(a.cfg.Network, ip)
	switch {
	case err != nil:
		return err
	case owned && strings.HasPrefix(owner.ContainerID, MovedPrefix):
		// Back home: the reservation kept while it was away goes.
		return tx.DeleteAllocation(owner)
	case owned || b.IsBound():
		return fmt.Errorf("network %q: workload %q's address %s, recorded as moved here, is held here by %s: %w",
			a.cfg.Network, req.Workload, ip, describeOwner(tx, owner), ErrTaken)
	}
	b.SetUsed(off, true)
	return tx.PutBlock(a.cfg.Network, b)
}

// holdTx turns the allocation al into its workload's hold until the
// given time (the sticky period's end, or for Abort the hold's own). An older hold of the same workload and interface
// (another sandbox's) stays: the allocation is then released without a
// hold of its own. It returns the hold made (ok false: none).
func (a *Allocator) holdTx(tx Tx, al Allocation, until time.Time) (Allocation, bool, error) {
	hk := HoldKey(al.Network, al.Workload, al.IfName)
	if _, older, err := tx.Allocation(hk); err != nil || older {
		if err == nil {
			_, _, err = releaseTx(tx, al.Key)
		}
		return Allocation{}, false, err
	}
	if err := tx.DeleteAllocation(al.Key); err != nil {
		return Allocation{}, false, err
	}
	h := al
	h.Key = hk
	h.Resumed = time.Time{}
	h.HeldUntil = until.UTC()
	return h, true, tx.PutAllocation(h)
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
