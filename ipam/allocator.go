package ipam

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// Allocator hands out addresses of one network on one node.
//
// Semantics: the same (network, containerID, ifname) asked twice gets the
// same addresses; a dual-stack allocation takes one address per subnet in
// one transaction; requested addresses that are taken, reserved or outside
// the node's ranges fail with nothing allocated; addresses are handed out
// round-robin (a cursor per subnet), so a released address is reused only
// after the rest of the node's ranges.
type Allocator struct {
	cfg Config
	st  Store
	src BlockSource
	// Now stamps new allocations; tests may replace it.
	Now func() time.Time
}

// Request asks for an attachment's addresses.
type Request struct {
	ContainerID string
	IfName      string
	// IPs optionally requests specific addresses, at most one per subnet.
	IPs []netip.Addr
	// Workload optionally names the workload (see Allocation.Workload).
	Workload string
}

// errNeedBlock aborts a transaction that needs a block from the source.
var errNeedBlock = errors.New("need block")

// NewAllocator validates cfg and returns an allocator over st. src nil
// means NewSource(&cfg).
func NewAllocator(cfg Config, st Store, src BlockSource) (*Allocator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if src == nil {
		src = NewSource(&cfg)
	}
	return &Allocator{cfg: cfg, st: st, src: src, Now: time.Now}, nil
}

// Config returns the allocator's configuration.
func (a *Allocator) Config() Config { return a.cfg }

// round is the state carried across the transactions of one Allocate.
type round struct {
	pending []netip.Prefix // per subnet: block just obtained from the source
	wrap    []bool         // per subnet: source exhausted, reuse from the start
	srcErr  []error        // per subnet: source failure, reported if wrapping finds nothing
	needIdx int            // subnet needing a block
	needFor netip.Addr     // requested address needing its block
	lost    []LostBlock    // reported by the source, to mark in the next transaction
	foreign []ForeignAddrs // reported by the source, to reserve with their blocks
}

// Allocate returns the addresses of req's attachment, allocating them if
// needed.
func (a *Allocator) Allocate(ctx context.Context, req Request) (Allocation, error) {
	for range 3 {
		res, err := a.resume(ctx, req)
		if err != nil {
			return Allocation{}, err
		}
		out, err := a.allocate(ctx, req, res)
		if err != nil && res != nil && res.Undo != nil {
			// Best effort: a record left behind is rolled forward into a
			// hold, or removed, by the source's sync.
			_ = res.Undo(ctx)
		}
		if !errors.Is(err, errRetry) {
			return out, err
		}
	}
	// The sticky state kept changing under us: a new address.
	return a.allocate(ctx, req, nil)
}

// allocate runs Allocate's transactions; res, when set, is what the
// StickySource decided for the workload.
func (a *Allocator) allocate(ctx context.Context, req Request, res *Resumed) (Allocation, error) {
	want, err := a.requested(req.IPs)
	if err != nil {
		return Allocation{}, err
	}
	n := len(a.cfg.Subnets)
	r := &round{pending: make([]netip.Prefix, n), wrap: make([]bool, n), srcErr: make([]error, n)}
	var unlock func()
	defer func() {
		if unlock != nil {
			unlock()
		}
	}()
	for range 4*n + 3 {
		var out Allocation
		err := a.st.Update(ctx, func(tx Tx) error {
			var err error
			out, err = a.tryAllocate(tx, req, want, r, res)
			return err
		})
		if !errors.Is(err, errNeedBlock) {
			return out, err
		}
		if unlock == nil {
			// A block is needed: queue behind the node's other processes
			// claiming on this network, then try again, since the one
			// ahead may have got a block with room for this one too.
			if unlock, err = a.claimLock(ctx); err != nil {
				return Allocation{}, err
			}
			if unlock != nil {
				continue
			}
		}
		if err := a.obtainBlock(ctx, r); err != nil {
			return Allocation{}, err
		}
		// Record the new block at once, in its own transaction: a block
		// full on arrival (foreign reservations) must stay held, or the
		// next attempt would ask the source for it again.
		if r.pending[r.needIdx].IsValid() {
			if err := a.st.Update(ctx, func(tx Tx) error { return a.putPending(tx, r) }); err != nil {
				return Allocation{}, err
			}
		}
	}
	return Allocation{}, fmt.Errorf("network %q: allocation for %s/%s did not settle: %w", a.cfg.Network, req.ContainerID, req.IfName, ErrBusy)
}

// claimLock takes the store's claim lock for the network when the source
// claims from a cluster store (not a static source, whose blocks follow
// from the configuration); nil when there is none to take.
func (a *Allocator) claimLock(ctx context.Context) (func(), error) {
	cl, ok := a.st.(ClaimLocker)
	if _, static := a.src.(RangeOwner); !ok || static {
		return nil, nil
	}
	unlock, err := cl.ClaimLock(ctx, a.cfg.Network)
	if err != nil {
		return nil, fmt.Errorf("network %q: wait for this node's other claims: %w", a.cfg.Network, err)
	}
	return unlock, nil
}

// requested maps requested addresses to subnet indexes.
func (a *Allocator) requested(ips []netip.Addr) ([]netip.Addr, error) {
	want := make([]netip.Addr, len(a.cfg.Subnets))
	for _, ip := range ips {
		i := a.subnetIndex(ip)
		if i < 0 {
			return nil, fmt.Errorf("network %q: requested %s is outside the subnets %s: %w", a.cfg.Network, ip, subnetList(a.cfg.Subnets), ErrOutOfRange)
		}
		if want[i].IsValid() {
			return nil, fmt.Errorf("network %q: requested %s and %s are both in subnet %s: %w", a.cfg.Network, want[i], ip, a.cfg.Subnets[i].Prefix, ErrConfig)
		}
		want[i] = ip
	}
	return want, nil
}

func (a *Allocator) subnetIndex(ip netip.Addr) int {
	for i, s := range a.cfg.Subnets {
		if s.Prefix.Contains(ip) {
			return i
		}
	}
	return -1
}

// obtainBlock asks the source, outside any transaction (the store lock is
// free while the source talks to etcd), for the block the last attempt
// needed.
func (a *Allocator) obtainBlock(ctx context.Context, r *round) error {
	i := r.needIdx
	sub := a.cfg.Subnets[i].Prefix
	bits := a.cfg.BlockBits(sub)
	var held Held
	err := a.st.View(ctx, func(tx Tx) error {
		var err error
		held, err = heldIn(tx, a.cfg.Network, sub)
		return err
	})
	if err != nil {
		return err
	}
	defer a.takeLost(r)
	if r.needFor.IsValid() {
		p, err := a.src.Containing(ctx, sub, bits, r.needFor, held)
		if err != nil {
			return fmt.Errorf("network %q: node %q: %w", a.cfg.Network, a.cfg.Node, err)
		}
		r.pending[i] = p
		return nil
	}
	if !a.cfg.HasNodeRange() {
		return fmt.Errorf("network %q: %w", a.cfg.Network, a.cfg.NodeRangeError())
	}
	p, err := a.src.Next(ctx, sub, bits, held)
	switch {
	case err == nil:
		r.pending[i] = p
	case r.wrap[i]:
		if errors.Is(err, ErrExhausted) {
			return a.exhausted(sub)
		}
		return fmt.Errorf("network %q: node %q: %w", a.cfg.Network, a.cfg.Node, err)
	case errors.Is(err, ErrConfig):
		return fmt.Errorf("network %q: %w", a.cfg.Network, err)
	default:
		// Exhausted or failing (etcd unreachable): reuse free addresses of
		// held blocks before giving up; a failure is reported only if
		// there are none.
		r.wrap[i] = true
		if !errors.Is(err, ErrExhausted) {
			r.srcErr[i] = fmt.Errorf("network %q: node %q: no free address in held blocks of %s and no new block: %w", a.cfg.Network, a.cfg.Node, sub, err)
		}
	}
	return nil
}

// takeLost collects the blocks the source found lost, and the foreign
// addresses of the blocks it gave, while it worked.
func (a *Allocator) takeLost(r *round) {
	if lr, ok := a.src.(LossReporter); ok {
		r.lost = append(r.lost, lr.TakeLost()...)
	}
	if fr, ok := a.src.(ForeignReporter); ok {
		r.foreign = append(r.foreign, fr.TakeForeign()...)
	}
}

func (a *Allocator) exhausted(sub netip.Prefix) error {
	return fmt.Errorf("network %q: node %q has no free address in %s (ranges %s): %w",
		a.cfg.Network, a.cfg.Node, sub, prefixList(a.src.Ranges(sub)), ErrExhausted)
}

// tryAllocate is one transaction's attempt. It returns errNeedBlock (and
// sets r.needIdx/needFor) when a block must first come from the source.
func (a *Allocator) tryAllocate(tx Tx, req Request, want []netip.Addr, r *round, res *Resumed) (Allocation, error) {
	key := Key{Network: a.cfg.Network, ContainerID: req.ContainerID, IfName: req.IfName}
	if old, ok, err := tx.Allocation(key); err != nil || ok {
		if err == nil {
			err = sameRequest(old, req.IPs)
		}
		return old, err
	}
	if err := a.prepare(tx, r); err != nil {
		return Allocation{}, err
	}
	if res != nil {
		return a.adopt(tx, key, req, res)
	}
	out := Allocation{Key: key, Created: a.Now().UTC(), Workload: req.Workload}
	if ips, until, ok, err := a.takeHold(tx, req, want); err != nil || ok {
		out.IPs, out.Resumed = ips, until
		if err == nil {
			err = tx.PutAllocation(out)
		}
		return out, err
	}
	for i, s := range a.cfg.Subnets {
		var ip netip.Addr
		var err error
		if want[i].IsValid() {
			ip, err = a.takeRequested(tx, want[i], r, i)
		} else {
			ip, err = a.pick(tx, s.Prefix, r, i)
		}
		if err != nil {
			return Allocation{}, err
		}
		out.IPs = append(out.IPs, ip)
	}
	return out, tx.PutAllocation(out)
}

func sameRequest(old Allocation, ips []netip.Addr) error {
	for _, ip := range ips {
		found := false
		for _, o := range old.IPs {
			found = found || o == ip
		}
		if !found {
			return fmt.Errorf("network %q: %s/%s already holds %v, not the requested %s: %w",
				old.Network, old.ContainerID, old.IfName, old.IPs, ip, ErrTaken)
		}
	}
	return nil
}

// prepare brings the held blocks in line with the configuration and what
// the source reported, frees expired sticky holds and quarantines, and records blocks just
// obtained from the source.
func (a *Allocator) prepare(tx Tx, r *round) error {
	if err := a.reconcile(tx); err != nil {
		return err
	}
	if err := a.markLost(tx, r.lost); err != nil {
		return err
	}
	if err := a.expireHolds(tx); err != nil {
		return err
	}
	if err := ExpireConflicts(tx, a.cfg.Network, a.Now()); err != nil {
		return err
	}
	return a.putPending(tx, r)
}

// putPending records blocks just obtained from the source as held, unless
// a block overlapping one appeared meanwhile (another process of the node).
func (a *Allocator) putPending(tx Tx, r *round) error {
	for i, p := range r.pending {
		if !p.IsValid() {
			continue
		}
		held, err := heldIn(tx, a.cfg.Network, a.cfg.Subnets[i].Prefix)
		if err != nil {
			return err
		}
		if held.Overlaps(p) {
			continue
		}
		b, err := NewBlock(p, a.cfg.Reserved(a.cfg.Subnets[i]))
		if err != nil {
			return err
		}
		if err := a.reserveForeign(tx, b, r.foreign); err != nil {
			return err
		}
	}
	return nil
}

// reserveForeign records the new block b with its foreign addresses (see
// ForeignAddrs) marked used and reserved for the node that may use them.
//
// An address gets one reservation: a moved one (a record binds it to its
// node) before a foreign one (the old node's bitmap), so that ending the
// second never frees what the first keeps.
func (a *Allocator) reserveForeign(tx Tx, b Block, foreign []ForeignAddrs) error {
	ordered := slices.Clone(foreign)
	slices.SortStableFunc(ordered, func(x, y ForeignAddrs) int {
		switch {
		case x.Moved == y.Moved:
			return 0
		case x.Moved:
			return -1
		}
		return 1
	})
	for _, f := range ordered {
		if f.Block != b.Prefix {
			continue
		}
		for _, ip := range f.Addrs {
			off, ok := b.Offset(ip)
			if !ok || b.IsUsed(off) {
				continue
			}
			b.SetUsed(off, true)
			k := ForeignKey(a.cfg.Network, f.Node, ip)
			if f.Moved {
				k = MovedKey(a.cfg.Network, f.Node, ip)
			}
			fa := Allocation{Key: k, IPs: []netip.Addr{ip}, Created: a.Now().UTC()}
			if err := tx.PutAllocation(fa); err != nil {
				return err
			}
		}
	}
	return tx.PutBlock(a.cfg.Network, b)
}

func (a *Allocator) takeRequested(tx Tx, ip netip.Addr, r *round, i int) (netip.Addr, error) {
	b, ok, err := tx.BlockContaining(a.cfg.Network, ip)
	if err != nil {
		return ip, err
	}
	if !ok {
		r.needIdx, r.needFor = i, ip
		return ip, errNeedBlock
	}
	if !b.Usable() {
		return ip, fmt.Errorf("network %q: requested %s lies in block %s, which node %q may no longer use (%s): %w",
			a.cfg.Network, ip, b.Prefix, a.cfg.Node, b.Lost, ErrOutOfRange)
	}
	off, _ := b.Offset(ip)
	if b.IsReserved(off) {
		return ip, fmt.Errorf("network %q: requested %s is reserved (network, broadcast, gateway or exclude): %w", a.cfg.Network, ip, ErrOutOfRange)
	}
	if b.IsUsed(off) {
		owner, _, _ := tx.Owner(a.cfg.Network, ip)
		return ip, fmt.Errorf("network %q: requested %s is held by %s: %w", a.cfg.Network, ip, describeOwner(tx, owner), ErrTaken)
	}
	b.SetUsed(off, true)
	return ip, tx.PutBlock(a.cfg.Network, b)
}
