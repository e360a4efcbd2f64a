package ipam

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
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
}

// Allocate returns the addresses of req's attachment, allocating them if
// needed.
func (a *Allocator) Allocate(ctx context.Context, req Request) (Allocation, error) {
	want, err := a.requested(req.IPs)
	if err != nil {
		return Allocation{}, err
	}
	n := len(a.cfg.Subnets)
	r := &round{pending: make([]netip.Prefix, n), wrap: make([]bool, n), srcErr: make([]error, n)}
	for range 4*n + 2 {
		var out Allocation
		err := a.st.Update(ctx, func(tx Tx) error {
			var err error
			out, err = a.tryAllocate(tx, req, want, r)
			return err
		})
		if !errors.Is(err, errNeedBlock) {
			return out, err
		}
		if err := a.obtainBlock(ctx, r); err != nil {
			return Allocation{}, err
		}
	}
	return Allocation{}, fmt.Errorf("network %q: allocation for %s/%s did not settle: %w", a.cfg.Network, req.ContainerID, req.IfName, ErrBusy)
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

// obtainBlock asks the source, outside any transaction, for the block the
// last attempt needed.
func (a *Allocator) obtainBlock(ctx context.Context, r *round) error {
	i := r.needIdx
	sub := a.cfg.Subnets[i].Prefix
	bits := a.cfg.BlockBits(sub)
	if r.needFor.IsValid() {
		p, err := a.src.Containing(ctx, sub, bits, r.needFor)
		if err != nil {
			return fmt.Errorf("network %q: node %q: %w", a.cfg.Network, a.cfg.Node, err)
		}
		r.pending[i] = p
		return nil
	}
	held := map[netip.Prefix]bool{}
	err := a.st.View(ctx, func(tx Tx) error {
		return tx.ForEachBlock(a.cfg.Network, func(b Block) error {
			if sub.Contains(b.Prefix.Addr()) {
				held[b.Prefix] = true
			}
			return nil
		})
	})
	if err != nil {
		return err
	}
	p, err := a.src.Next(ctx, sub, bits, held)
	switch {
	case err == nil:
		r.pending[i] = p
	case r.wrap[i]:
		return a.exhausted(sub)
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

func (a *Allocator) exhausted(sub netip.Prefix) error {
	return fmt.Errorf("network %q: node %q has no free address in %s (ranges %s): %w",
		a.cfg.Network, a.cfg.Node, sub, prefixList(a.src.Ranges(sub)), ErrExhausted)
}

// tryAllocate is one transaction's attempt. It returns errNeedBlock (and
// sets r.needIdx/needFor) when a block must first come from the source.
func (a *Allocator) tryAllocate(tx Tx, req Request, want []netip.Addr, r *round) (Allocation, error) {
	key := Key{Network: a.cfg.Network, ContainerID: req.ContainerID, IfName: req.IfName}
	if old, ok, err := tx.Allocation(key); err != nil || ok {
		if err == nil {
			err = sameRequest(old, req.IPs)
		}
		return old, err
	}
	if err := a.putPending(tx, r); err != nil {
		return Allocation{}, err
	}
	out := Allocation{Key: key, Created: a.Now().UTC()}
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

// putPending records blocks just obtained from the source as held.
func (a *Allocator) putPending(tx Tx, r *round) error {
	for i, p := range r.pending {
		if !p.IsValid() {
			continue
		}
		if _, ok, err := tx.BlockContaining(a.cfg.Network, p.Addr()); err != nil || ok {
			if err != nil {
				return err
			}
			continue
		}
		b, err := NewBlock(p, a.cfg.Reserved(a.cfg.Subnets[i]))
		if err != nil {
			return err
		}
		if err := tx.PutBlock(a.cfg.Network, b); err != nil {
			return err
		}
	}
	return nil
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
	off, _ := b.Offset(ip)
	if b.IsReserved(off) {
		return ip, fmt.Errorf("network %q: requested %s is reserved (network, broadcast, gateway or exclude): %w", a.cfg.Network, ip, ErrOutOfRange)
	}
	if b.IsUsed(off) {
		owner, _, _ := tx.Owner(a.cfg.Network, ip)
		return ip, fmt.Errorf("network %q: requested %s is held by %s/%s: %w", a.cfg.Network, ip, owner.ContainerID, owner.IfName, ErrTaken)
	}
	b.SetUsed(off, true)
	return ip, tx.PutBlock(a.cfg.Network, b)
}
