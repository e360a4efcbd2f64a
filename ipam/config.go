package ipam

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Default block sizes (prefix lengths): 64 addresses per IPv4 block, 256 per
// IPv6 block, as Calico's /26 and close to its /122.
const (
	DefaultBlockSize4 = 26
	DefaultBlockSize6 = 120
)

// Subnet is one subnet of a network and its gateway. The zero Gateway means
// DefaultGateway(Prefix).
type Subnet struct {
	Prefix  netip.Prefix
	Gateway netip.Addr
}

// Config is one network's IPAM configuration as seen by one node.
type Config struct {
	// Network names the network; allocations are kept per network.
	Network string
	// Subnets: one per address family for dual stack; an allocation takes
	// one address from each.
	Subnets []Subnet
	// Exclude lists addresses and prefixes never handed out.
	Exclude []netip.Prefix
	// BlockSize is the block prefix length for IPv4 subnets (0: 26). It also
	// applies to IPv6 subnets when BlockSize6 is 0 and no subnet is IPv4.
	BlockSize int
	// BlockSize6 is the block prefix length for IPv6 subnets (0: 120).
	BlockSize6 int
	// Node is this node's name.
	Node string
	// NodeRanges, when set, gives every node its static ranges; they must lie
	// in the subnets and be pairwise disjoint. A node without a range may
	// still release what it holds; it gets no new address.
	NodeRanges map[string][]netip.Prefix
	// Sticky, when positive, keeps a released workload's addresses for it
	// that long (see Allocation.Workload): the same workload coming back
	// gets them again, and nobody else does meanwhile.
	Sticky time.Duration
}

// BlockBits returns the block prefix length used for subnet: the configured
// or default size for its family, never shorter than the subnet itself.
func (c *Config) BlockBits(subnet netip.Prefix) int {
	bits := DefaultBlockSize4
	if subnet.Addr().Is6() {
		bits = DefaultBlockSize6
		switch {
		case c.BlockSize6 != 0:
			bits = c.BlockSize6
		case c.BlockSize != 0 && !c.hasIPv4():
			bits = c.BlockSize
		}
	} else if c.BlockSize != 0 {
		bits = c.BlockSize
	}
	return max(bits, subnet.Bits())
}

func (c *Config) hasIPv4() bool {
	return slices.ContainsFunc(c.Subnets, func(s Subnet) bool { return s.Prefix.Addr().Is4() })
}

// GatewayAddr returns the gateway of s: the configured one or DefaultGateway.
func (s Subnet) GatewayAddr() netip.Addr {
	if s.Gateway.IsValid() {
		return s.Gateway
	}
	return DefaultGateway(s.Prefix)
}

// Reserved returns the prefixes of subnet that are never handed out: the
// network and broadcast addresses, the gateway, and Exclude.
func (c *Config) Reserved(s Subnet) []netip.Prefix {
	var out []netip.Prefix
	for _, a := range NetworkAndBroadcast(s.Prefix) {
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	if gw := s.GatewayAddr(); gw.IsValid() {
		out = append(out, netip.PrefixFrom(gw, gw.BitLen()))
	}
	for _, e := range c.Exclude {
		if e.Overlaps(s.Prefix) {
			out = append(out, e)
		}
	}
	return out
}

// SubnetOf returns the configured subnet holding a.
func (c *Config) SubnetOf(a netip.Addr) (Subnet, bool) {
	for _, s := range c.Subnets {
		if s.Prefix.Contains(a) {
			return s, true
		}
	}
	return Subnet{}, false
}

// Validate checks the configuration. Errors wrap ErrConfig (and ErrOverlap
// for overlapping ranges) and name the field and value at fault.
func (c *Config) Validate() error {
	if c.Network == "" {
		return fmt.Errorf("network name is empty: %w", ErrConfig)
	}
	if len(c.Subnets) == 0 {
		return fmt.Errorf("network %q: no subnet: %w", c.Network, ErrConfig)
	}
	for _, bs := range []struct {
		name      string
		v, lo, hi int
	}{{"blockSize", c.BlockSize, 16, 32}, {"blockSize6", c.BlockSize6, 112, 128}} {
		if bs.v != 0 && (bs.v < bs.lo || bs.v > bs.hi) {
			if bs.name == "blockSize" && !c.hasIPv4() && bs.v >= 112 && bs.v <= 128 {
				continue
			}
			return fmt.Errorf("%s %d: must be a prefix length from %d to %d (at most %d addresses a block): %w",
				bs.name, bs.v, bs.lo, bs.hi, MaxBlockAddrs, ErrConfig)
		}
	}
	for _, e := range c.Exclude {
		if !e.IsValid() {
			return fmt.Errorf("exclude: invalid prefix: %w", ErrConfig)
		}
	}
	for i, s := range c.Subnets {
		if err := c.validateSubnet(s); err != nil {
			return err
		}
		for _, o := range c.Subnets[:i] {
			if o.Prefix.Overlaps(s.Prefix) {
				return fmt.Errorf("subnet %s overlaps subnet %s: %w: %w", s.Prefix, o.Prefix, ErrOverlap, ErrConfig)
			}
		}
	}
	if c.NodeRanges != nil {
		if c.Node == "" {
			return fmt.Errorf("node name is empty but nodeRanges is set: %w", ErrConfig)
		}
		if err := ValidateNodeRanges(c.Subnets, c.NodeRanges); err != nil {
			return err
		}
	}
	if c.Sticky < 0 {
		return fmt.Errorf("sticky %s: must not be negative: %w", c.Sticky, ErrConfig)
	}
	return nil
}

func (c *Config) validateSubnet(s Subnet) error {
	if !s.Prefix.IsValid() {
		return fmt.Errorf("subnet: invalid prefix: %w", ErrConfig)
	}
	if s.Prefix.Masked() != s.Prefix {
		return fmt.Errorf("subnet %s has host bits set; did you mean %s?: %w", s.Prefix, s.Prefix.Masked(), ErrConfig)
	}
	if s.Gateway.IsValid() && !s.Prefix.Contains(s.Gateway) {
		return fmt.Errorf("gateway %s is outside subnet %s: %w", s.Gateway, s.Prefix, ErrConfig)
	}
	bits := c.BlockBits(s.Prefix)
	if _, err := Split(s.Prefix, bits); err != nil {
		return fmt.Errorf("subnet %s: %w: %w", s.Prefix, err, ErrConfig)
	}
	if s.Prefix.Addr().BitLen()-bits > 16 {
		field := "blockSize"
		if s.Prefix.Addr().Is6() {
			field = "blockSize6"
		}
		return fmt.Errorf("subnet %s: blocks of /%d are larger than %d addresses; set %s: %w",
			s.Prefix, bits, MaxBlockAddrs, field, ErrConfig)
	}
	if !c.anyUsable(s) {
		return fmt.Errorf("subnet %s: gateway, network, broadcast and exclude leave no usable address: %w", s.Prefix, ErrConfig)
	}
	return nil
}

// anyUsable reports whether some address of s is not reserved. It probes
// the first addresses past each reserved range rather than every address.
func (c *Config) anyUsable(s Subnet) bool {
	res := c.Reserved(s)
	cands := []netip.Addr{s.Prefix.Addr()}
	for _, r := range res {
		if n := LastAddr(r).Next(); n.IsValid() {
			cands = append(cands, n)
		}
	}
	for _, a := range cands {
		if !s.Prefix.Contains(a) {
			continue
		}
		if !slices.ContainsFunc(res, func(r netip.Prefix) bool { return r.Contains(a) }) {
			return true
		}
	}
	return false
}

// ValidateNodeRanges checks that every node range is a valid prefix inside
// one of subnets and that no two ranges overlap. The error names both
// offending ranges and their nodes, and wraps ErrOverlap and ErrConfig.
func ValidateNodeRanges(subnets []Subnet, ranges map[string][]netip.Prefix) error {
	type owned struct {
		node string
		p    netip.Prefix
	}
	var all []owned
	for _, node := range sortedKeys(ranges) {
		for _, p := range ranges[node] {
			if !p.IsValid() || p.Masked() != p {
				return fmt.Errorf("nodeRanges[%q]: %s is not a valid prefix: %w", node, p, ErrConfig)
			}
			if !slices.ContainsFunc(subnets, func(s Subnet) bool { return Covers(s.Prefix, p) }) {
				return fmt.Errorf("nodeRanges[%q]: %s is outside the subnets %s: %w", node, p, subnetList(subnets), ErrConfig)
			}
			for _, o := range all {
				if o.p.Overlaps(p) {
					return fmt.Errorf("nodeRanges: %s of node %q overlaps %s of node %q: %w: %w",
						o.p, o.node, p, node, ErrOverlap, ErrConfig)
				}
			}
			all = append(all, owned{node, p})
		}
	}
	return nil
}

func subnetList(subnets []Subnet) string {
	s := make([]string, len(subnets))
	for i, sn := range subnets {
		s[i] = sn.Prefix.String()
	}
	return strings.Join(s, ", ")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// HasNodeRange reports whether this node may get new blocks: NodeRanges is
// unset (the whole subnet) or names a range for Node. A node removed from
// nodeRanges can still DEL, GC and CHECK.
func (c *Config) HasNodeRange() bool {
	return c.NodeRanges == nil || len(c.NodeRanges[c.Node]) > 0
}

// NodeRangeError says that this node has no range, naming the nodes that
// do; it wraps ErrConfig.
func (c *Config) NodeRangeError() error {
	return fmt.Errorf("nodeRanges has no range for node %q (nodes: %s): add one, or move its workloads to a node that has one: %w",
		c.Node, strings.Join(sortedKeys(c.NodeRanges), ", "), ErrConfig)
}
