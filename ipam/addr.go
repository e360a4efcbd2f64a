package ipam

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"net/netip"
	"strings"
)

// u128 is an address as a 128-bit unsigned integer (IPv4 in the low 32 bits).
type u128 struct{ hi, lo uint64 }

func toU128(a netip.Addr) u128 {
	if a.Is4() {
		b := a.As4()
		return u128{lo: uint64(binary.BigEndian.Uint32(b[:]))}
	}
	b := a.As16()
	return u128{hi: binary.BigEndian.Uint64(b[:8]), lo: binary.BigEndian.Uint64(b[8:])}
}

func (u u128) addr(is4 bool) netip.Addr {
	if is4 {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], uint32(u.lo))
		return netip.AddrFrom4(b)
	}
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], u.hi)
	binary.BigEndian.PutUint64(b[8:], u.lo)
	return netip.AddrFrom16(b)
}

func (u u128) add(n uint64) u128 {
	lo, c := bits.Add64(u.lo, n, 0)
	return u128{hi: u.hi + c, lo: lo}
}

func (u u128) sub(v u128) u128 {
	lo, b := bits.Sub64(u.lo, v.lo, 0)
	return u128{hi: u.hi - v.hi - b, lo: lo}
}

// shl shifts left by n < 128.
func (u u128) shl(n int) u128 {
	switch {
	case n == 0:
		return u
	case n >= 64:
		return u128{hi: u.lo << (n - 64)}
	default:
		return u128{hi: u.hi<<n | u.lo>>(64-n), lo: u.lo << n}
	}
}

// shr shifts right by n < 128.
func (u u128) shr(n int) u128 {
	switch {
	case n == 0:
		return u
	case n >= 64:
		return u128{lo: u.hi >> (n - 64)}
	default:
		return u128{hi: u.hi >> n, lo: u.lo>>n | u.hi<<(64-n)}
	}
}

func (u u128) less(v u128) bool { return u.hi < v.hi || (u.hi == v.hi && u.lo < v.lo) }

// Offset returns a+n, and false when that leaves the address family.
func Offset(a netip.Addr, n uint64) (netip.Addr, bool) {
	u := toU128(a)
	v := u.add(n)
	if v.less(u) || (a.Is4() && v.lo > 0xffffffff) {
		return netip.Addr{}, false
	}
	return v.addr(a.Is4()), true
}

// Distance returns b-a as an unsigned count, for a <= b of one family whose
// difference fits in 64 bits.
func Distance(a, b netip.Addr) uint64 { return toU128(b).sub(toU128(a)).lo }

// LastAddr returns the highest address of p (the IPv4 broadcast address).
func LastAddr(p netip.Prefix) netip.Addr {
	p = p.Masked()
	host := p.Addr().BitLen() - p.Bits()
	u := toU128(p.Addr())
	if host > 0 {
		ones := u128{hi: ^uint64(0), lo: ^uint64(0)}.shr(128 - host)
		u = u128{hi: u.hi | ones.hi, lo: u.lo | ones.lo}
	}
	return u.addr(p.Addr().Is4())
}

// Size returns the number of addresses in p, saturated at 2^64-1.
func Size(p netip.Prefix) uint64 {
	host := p.Addr().BitLen() - p.Bits()
	if host >= 64 {
		return ^uint64(0)
	}
	return 1 << host
}

// NetworkAndBroadcast returns the addresses of subnet that are never handed
// out because of the subnet alone: the network address (for IPv6 the
// subnet-router anycast address) and, for IPv4, the broadcast address.
// Point-to-point sized subnets (IPv4 /31 and /32, IPv6 /127 and /128) have none.
func NetworkAndBroadcast(subnet netip.Prefix) []netip.Addr {
	subnet = subnet.Masked()
	if subnet.Addr().BitLen()-subnet.Bits() < 2 {
		return nil
	}
	if subnet.Addr().Is4() {
		return []netip.Addr{subnet.Addr(), LastAddr(subnet)}
	}
	return []netip.Addr{subnet.Addr()}
}

// DefaultGateway returns the gateway used when none is configured: the first
// address after the network address, as host-local does; the zero Addr for
// point-to-point sized subnets.
func DefaultGateway(subnet netip.Prefix) netip.Addr {
	subnet = subnet.Masked()
	if subnet.Addr().BitLen()-subnet.Bits() < 2 {
		return netip.Addr{}
	}
	return subnet.Addr().Next()
}

// ParseRange parses an address ("192.168.100.1", a /32 or /128) or a prefix
// ("192.168.100.2/31"). A prefix with host bits set is refused rather than
// silently masked, since it most likely is a typo.
func ParseRange(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is neither an address nor a prefix", s)
		}
		if a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("%q: zoned addresses are not allowed", s)
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not a prefix: %w", s, err)
	}
	if p.Addr().Is4In6() {
		return netip.Prefix{}, fmt.Errorf("%q: use the plain IPv4 form", s)
	}
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("%q has host bits set; did you mean %s?", s, p.Masked())
	}
	return p, nil
}

// Covers reports whether outer contains every address of inner.
func Covers(outer, inner netip.Prefix) bool {
	return outer.Addr().BitLen() == inner.Addr().BitLen() &&
		outer.Bits() <= inner.Bits() && outer.Contains(inner.Addr())
}
