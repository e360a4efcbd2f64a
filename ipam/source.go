package ipam

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
)

// BlockSource hands a node blocks of a subnet. The Allocator asks it for
// another block only when the blocks the node holds have no free address
// left past the round-robin cursor, so a slow source (etcd) is consulted
// rarely and never inside a store transaction.
type BlockSource interface {
	// Next returns a block of subnet, of prefix length bits, that this node
	// may use and that is not in held. ErrExhausted when there is none; a
	// source may also return ErrExhausted to make the allocator reuse the
	// free addresses of held blocks before claiming more. Any other error
	// (wrap ErrBusy when the cluster store is unreachable) is returned by
	// Allocate only when no held block has a free address.
	Next(ctx context.Context, subnet netip.Prefix, bits int, held map[netip.Prefix]bool) (netip.Prefix, error)
	// Containing returns the node's block of subnet (of length bits) holding
	// addr, claiming it when needed. ErrOutOfRange when addr is not this
	// node's to hand out.
	Containing(ctx context.Context, subnet netip.Prefix, bits int, addr netip.Addr) (netip.Prefix, error)
	// Ranges returns the ranges of subnet this node allocates from, for
	// messages (exhaustion names them).
	Ranges(subnet netip.Prefix) []netip.Prefix
}

// StaticSource gives a node the blocks of its static ranges, in order.
// Blocks lying wholly inside an Exclude prefix are skipped by arithmetic.
type StaticSource struct {
	// NodeRanges are this node's ranges (all subnets, all families).
	NodeRanges []netip.Prefix
	// Exclude as in Config.
	Exclude []netip.Prefix
}

// NewSource returns the BlockSource a Config implies without a cluster
// store: a StaticSource over cfg.NodeRanges[cfg.Node] when NodeRanges is
// set, else a StaticSource over the whole of every subnet (single node).
func NewSource(cfg *Config) *StaticSource {
	if cfg.NodeRanges != nil {
		return &StaticSource{NodeRanges: slices.Clone(cfg.NodeRanges[cfg.Node]), Exclude: cfg.Exclude}
	}
	src := &StaticSource{Exclude: cfg.Exclude}
	for _, s := range cfg.Subnets {
		src.NodeRanges = append(src.NodeRanges, s.Prefix)
	}
	return src
}

var _ BlockSource = (*StaticSource)(nil)

// Ranges implements BlockSource.
func (s *StaticSource) Ranges(subnet netip.Prefix) []netip.Prefix {
	var out []netip.Prefix
	for _, r := range s.NodeRanges {
		if Covers(subnet, r) {
			out = append(out, r)
		}
	}
	return out
}

// Next implements BlockSource.
func (s *StaticSource) Next(_ context.Context, subnet netip.Prefix, bits int, held map[netip.Prefix]bool) (netip.Prefix, error) {
	for _, r := range s.Ranges(subnet) {
		blocks, err := Split(r, max(bits, r.Bits()))
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("node range %s: %w", r, err)
		}
		for i := uint64(0); i < blocks.Len(); i++ {
			b := blocks.At(i)
			if held[b] {
				continue
			}
			if e, ok := s.excludedBy(b); ok {
				// Jump past the excluded prefix: index of its last block.
				last, _ := blocks.Index(LastAddr(e))
				if last > i {
					i = last
				}
				continue
			}
			return b, nil
		}
	}
	return netip.Prefix{}, ErrExhausted
}

func (s *StaticSource) excludedBy(b netip.Prefix) (netip.Prefix, bool) {
	for _, e := range s.Exclude {
		if Covers(e, b) {
			return e, true
		}
	}
	return netip.Prefix{}, false
}

// Containing implements BlockSource.
func (s *StaticSource) Containing(_ context.Context, subnet netip.Prefix, bits int, addr netip.Addr) (netip.Prefix, error) {
	for _, r := range s.Ranges(subnet) {
		if r.Contains(addr) {
			return addr.Prefix(max(bits, r.Bits()))
		}
	}
	return netip.Prefix{}, fmt.Errorf("%s is outside this node's ranges %s: %w", addr, prefixList(s.Ranges(subnet)), ErrOutOfRange)
}

func prefixList(ps []netip.Prefix) string {
	if len(ps) == 0 {
		return "(none)"
	}
	out := ""
	for i, p := range ps {
		if i > 0 {
			out += ", "
		}
		out += p.String()
	}
	return out
}
