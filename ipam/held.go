package ipam

import (
	"net/netip"
	"slices"
)

// Held is the set of blocks a node holds in one network, whatever their
// sizes (a blockSize change leaves blocks of the old size beside new
// ones). Blocks never overlap each other. Sources use Overlaps, never
// equality, to skip what the node holds: a block of the new size that
// overlaps an old one must not be handed out.
type Held struct {
	sorted []netip.Prefix // by start address, family first
}

// NewHeld returns the set of ps.
func NewHeld(ps ...netip.Prefix) Held {
	h := Held{sorted: make([]netip.Prefix, 0, len(ps))}
	for _, p := range ps {
		h.sorted = append(h.sorted, p.Masked())
	}
	slices.SortFunc(h.sorted, comparePrefix)
	return h
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

// Len returns the number of held blocks.
func (h Held) Len() int { return len(h.sorted) }

// All returns the held blocks in address order.
func (h Held) All() []netip.Prefix { return slices.Clone(h.sorted) }

// Has reports whether p itself is held.
func (h Held) Has(p netip.Prefix) bool {
	_, ok := slices.BinarySearchFunc(h.sorted, p.Masked(), comparePrefix)
	return ok
}

// Overlaps reports whether p shares an address with a held block. Held
// blocks are disjoint, so only the last one starting at or before p's
// last address can overlap it.
func (h Held) Overlaps(p netip.Prefix) bool {
	p = p.Masked()
	last := LastAddr(p)
	i, _ := slices.BinarySearchFunc(h.sorted, last, func(b netip.Prefix, a netip.Addr) int {
		if b.Addr().Compare(a) > 0 {
			return 1
		}
		return -1
	})
	// h.sorted[:i] start at or before last.
	return i > 0 && h.sorted[i-1].Overlaps(p)
}

// heldIn returns the blocks of network inside subnet that tx holds.
func heldIn(tx Tx, network string, subnet netip.Prefix) (Held, error) {
	var ps []netip.Prefix
	err := tx.ForEachBlock(network, func(b Block) error {
		if subnet.Contains(b.Prefix.Addr()) {
			ps = append(ps, b.Prefix)
		}
		return nil
	})
	return NewHeld(ps...), err
}
