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
// rarely, and never inside a store transaction: the node's store lock is
// never held while a source talks to the network.
type BlockSource interface {
	// Next returns a block of subnet, of prefix length bits, that this node
	// may use and that overlaps no block in held. ErrExhausted when there
	// is none; a source may also return ErrExhausted to make the allocator
	// reuse the free addresses of held blocks before claiming more. Any
	// other error (wrap ErrBusy when the cluster store is unreachable) is
	// returned by Allocate only when no held block has a free address.
	Next(ctx context.Context, subnet netip.Prefix, bits int, held Held) (netip.Prefix, error)
	// Containing returns a block of subnet holding addr that this node may
	// use, claiming it when needed: of length bits, or a longer prefix
	// when that block would overlap one in held. ErrOutOfRange when addr is
	// not this node's to hand out.
	Containing(ctx context.Context, subnet netip.Prefix, bits int, addr netip.Addr, held Held) (netip.Prefix, error)
	// Available reports, without claiming or writing anything, whether
	// Next would give a block: nil, ErrExhausted, or the source's failure.
	Available(ctx context.Context, subnet netip.Prefix, bits int, held Held) error
	// Ranges returns the ranges of subnet this node allocates from, for
	// messages (exhaustion names them).
	Ranges(subnet netip.Prefix) []netip.Prefix
}

// LostBlock is a held block that the node may no longer allocate from.
type LostBlock struct {
	Prefix netip.Prefix
	Reason string
}

// LossReporter is implemented by sources that learn, while they talk to
// their backend, that blocks the node holds were lost (claimed by another
// node after a forced reclaim). The Allocator marks them Lost in its next
// transaction.
type LossReporter interface {
	TakeLost() []LostBlock
}

// ForeignAddrs are addresses of a block just obtained from a source that
// another node may still use (it lost the block to a forced reclaim while
// they were in use). The Allocator reserves them (ForeignKey) when it
// records the block.
type ForeignAddrs struct {
	Block netip.Prefix
	Node  string
	Addrs []netip.Addr
	// Moved: a sticky record binds them to Node, whoever claims the
	// block; they are reserved as moved reservations (MovedKey), which
	// the source's sync ends once no record binds them elsewhere.
	Moved bool
}

// ForeignReporter is implemented by sources that can hand out blocks with
// foreign addresses in them.
type ForeignReporter interface {
	TakeForeign() []ForeignAddrs
}

// RangeOwner is implemented by sources whose ownership of a block follows
// from the configuration alone (StaticSource). The Allocator marks held
// blocks it no longer owns Lost when the configuration changes, and
// usable again when they come back.
type RangeOwner interface {
	Owns(p netip.Prefix) bool
}

// StaticSource gives a node the blocks of its static ranges, in order.
// Blocks lying wholly inside an Exclude prefix are skipped by arithmetic.
type StaticSource struct {
	// NodeRanges are this node's ranges (all subnets, all families).
	NodeRanges []netip.Prefix
	// Exclude as in Config.
	Exclude []netip.Prefix
	// Node names the node in messages.
	Node string
}

// NewSource returns the BlockSource a Config implies without a cluster
// store: a StaticSource over cfg.NodeRanges[cfg.Node] when NodeRanges is
// set (possibly none: a node removed from nodeRanges keeps what it holds
// but gets nothing new), else over the whole of every subnet (one node).
func NewSource(cfg *Config) *StaticSource {
	if cfg.NodeRanges != nil {
		return &StaticSource{NodeRanges: slices.Clone(cfg.NodeRanges[cfg.Node]), Exclude: cfg.Exclude, Node: cfg.Node}
	}
	src := &StaticSource{Exclude: cfg.Exclude, Node: cfg.Node}
	for _, s := range cfg.Subnets {
		src.NodeRanges = append(src.NodeRanges, s.Prefix)
	}
	return src
}

var (
	_ BlockSource = (*StaticSource)(nil)
	_ RangeOwner  = (*StaticSource)(nil)
)

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

// Owns implements RangeOwner: p lies inside one of the node's ranges.
func (s *StaticSource) Owns(p netip.Prefix) bool {
	return slices.ContainsFunc(s.NodeRanges, func(r netip.Prefix) bool { return Covers(r, p) })
}

// Next implements BlockSource.
func (s *StaticSource) Next(_ context.Context, subnet netip.Prefix, bits int, held Held) (netip.Prefix, error) {
	ranges := s.Ranges(subnet)
	if len(ranges) == 0 {
		return netip.Prefix{}, s.noRange(subnet)
	}
	for _, r := range ranges {
		blocks, err := Split(r, max(bits, r.Bits()))
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("node range %s: %w", r, err)
		}
		for i := uint64(0); i < blocks.Len(); i++ {
			b := blocks.At(i)
			if held.Overlaps(b) {
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

// Available implements BlockSource: Next has no side effect here.
func (s *StaticSource) Available(ctx context.Context, subnet netip.Prefix, bits int, held Held) error {
	_, err := s.Next(ctx, subnet, bits, held)
	return err
}

func (s *StaticSource) noRange(subnet netip.Prefix) error {
	return fmt.Errorf("nodeRanges has no range of %s for node %q: add one, or move this node's workloads elsewhere (it keeps what it holds): %w",
		subnet, s.Node, ErrConfig)
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
func (s *StaticSource) Containing(_ context.Context, subnet netip.Prefix, bits int, addr netip.Addr, held Held) (netip.Prefix, error) {
	for _, r := range s.Ranges(subnet) {
		if r.Contains(addr) {
			return ClearBlock(addr, max(bits, r.Bits()), held)
		}
	}
	return netip.Prefix{}, fmt.Errorf("%s is outside this node's ranges %s: %w", addr, prefixList(s.Ranges(subnet)), ErrOutOfRange)
}

// ClearBlock returns the block of length bits holding addr or, when that
// overlaps a held block (after a blockSize change), the shortest longer
// prefix holding addr that overlaps none. addr itself must
// not lie in a held block.
func ClearBlock(addr netip.Addr, bits int, held Held) (netip.Prefix, error) {
	for b := bits; b <= addr.BitLen(); b++ {
		p, err := addr.Prefix(b)
		if err != nil {
			return netip.Prefix{}, err
		}
		if !held.Overlaps(p) {
			return p, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("%s lies in a held block: %w", addr, ErrTaken)
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
