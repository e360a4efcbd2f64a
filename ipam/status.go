package ipam

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// Status returns nil when an allocation could succeed and no held block
// is lost. It never writes, to the store or to the source: held blocks
// are seen as the current configuration says (Allocator.current) and the
// source is only asked whether it could give a block (Available).
// Errors: ErrBlockLost naming the blocks and why, ErrExhausted, or the
// source's failure.
func (a *Allocator) Status(ctx context.Context) error {
	var lost []string
	free := make([]bool, len(a.cfg.Subnets))
	held := make([]Held, len(a.cfg.Subnets))
	err := a.st.View(ctx, func(tx Tx) error {
		ps := make([][]netip.Prefix, len(a.cfg.Subnets))
		err := tx.ForEachBlock(a.cfg.Network, func(b Block) error {
			b = a.current(b)
			if !b.Usable() {
				lost = append(lost, b.Lost)
			}
			for i, s := range a.cfg.Subnets {
				if s.Prefix.Contains(b.Prefix.Addr()) {
					ps[i] = append(ps[i], b.Prefix)
					free[i] = free[i] || (b.Usable() && b.Free() > 0)
				}
			}
			return nil
		})
		for i := range ps {
			held[i] = NewHeld(ps[i]...)
		}
		return err
	})
	if err != nil {
		return err
	}
	if len(lost) > 0 {
		return fmt.Errorf("network %q: node %q holds blocks it may no longer use, whose addresses another node may hand out (see medianetctl ipam check): %s: %w",
			a.cfg.Network, a.cfg.Node, strings.Join(lost, "; "), ErrBlockLost)
	}
	for i, s := range a.cfg.Subnets {
		if free[i] {
			continue
		}
		if !a.cfg.HasNodeRange() {
			return fmt.Errorf("network %q: %w: %w", a.cfg.Network, a.cfg.NodeRangeError(), ErrExhausted)
		}
		err := a.src.Available(ctx, s.Prefix, a.cfg.BlockBits(s.Prefix), held[i])
		if errors.Is(err, ErrExhausted) {
			return a.exhausted(s.Prefix)
		}
		if err != nil {
			return fmt.Errorf("network %q: node %q: no free address in held blocks of %s, and: %w", a.cfg.Network, a.cfg.Node, s.Prefix, err)
		}
	}
	return nil
}
