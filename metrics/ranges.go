package metrics

import (
	"math"
	"net/netip"
	"slices"

	"github.com/medianet/medianet/ipam"
)

// size returns the number of addresses in p as a float (an IPv6 /64 has
// 2^64, more than a uint64 holds).
func size(p netip.Prefix) float64 {
	return math.Ldexp(1, p.Addr().BitLen()-p.Bits())
}

// usable returns the number of addresses of r that may be handed out:
// those outside every reserved prefix (network, broadcast, gateway,
// exclude). Reserved prefixes may nest (a gateway inside an excluded
// range); each address is subtracted once.
func usable(r netip.Prefix, reserved []netip.Prefix) float64 {
	var in []netip.Prefix
	for _, x := range reserved {
		x = x.Masked()
		switch {
		case ipam.Covers(x, r):
			return 0
		case ipam.Covers(r, x):
			in = append(in, x)
		}
	}
	// Prefixes either nest or are disjoint: in address order (shortest
	// first at equal addresses), one nested in another comes after it.
	slices.SortFunc(in, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	n := size(r)
	var last netip.Prefix
	for _, x := range in {
		if last.IsValid() && last.Contains(x.Addr()) {
			continue
		}
		n -= size(x)
		last = x
	}
	return n
}

// nodeRanges returns the ranges of subnet s that cfg's node hands out:
// its nodeRanges inside s, else the whole subnet (a single node, or blocks
// claimed in etcd, where any unclaimed block may become the node's).
func nodeRanges(cfg *ipam.Config, s ipam.Subnet) []netip.Prefix {
	if cfg.NodeRanges == nil {
		return []netip.Prefix{s.Prefix.Masked()}
	}
	var out []netip.Prefix
	for _, r := range cfg.NodeRanges[cfg.Node] {
		if ipam.Covers(s.Prefix, r) {
			out = append(out, r.Masked())
		}
	}
	return out
}

// inAny reports whether p lies inside one of ranges.
func inAny(p netip.Prefix, ranges []netip.Prefix) bool {
	return slices.ContainsFunc(ranges, func(r netip.Prefix) bool { return ipam.Covers(r, p) })
}
