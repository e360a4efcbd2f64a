package ipam

import (
	"fmt"
	"math/bits"
	"net/netip"
)

// MaxBlockAddrs is the largest block: 2^16 addresses, an 8 KiB bitmap.
const MaxBlockAddrs = 1 << 16

// Blocks is Parent sliced into blocks of prefix length Bits. Nothing is
// materialised: block i is computed by arithmetic, so an IPv6 /64 split into
// /120 blocks (2^56 of them) costs nothing.
type Blocks struct {
	Parent netip.Prefix
	Bits   int
}

// Split returns parent sliced into blocks of prefix length bits. bits must
// be at least parent's length, at most the family's bit length, and the
// number of blocks must fit in 63 bits.
func Split(parent netip.Prefix, bits int) (Blocks, error) {
	if !parent.IsValid() {
		return Blocks{}, fmt.Errorf("split %s: invalid prefix", parent)
	}
	parent = parent.Masked()
	if bits < parent.Bits() || bits > parent.Addr().BitLen() {
		return Blocks{}, fmt.Errorf("split %s into /%d: block length must be between %d and %d",
			parent, bits, parent.Bits(), parent.Addr().BitLen())
	}
	if bits-parent.Bits() > 63 {
		return Blocks{}, fmt.Errorf("split %s into /%d: more than 2^63 blocks", parent, bits)
	}
	return Blocks{Parent: parent, Bits: bits}, nil
}

// Len returns the number of blocks.
func (b Blocks) Len() uint64 { return 1 << (b.Bits - b.Parent.Bits()) }

// At returns block i; i must be below Len.
func (b Blocks) At(i uint64) netip.Prefix {
	host := b.Parent.Addr().BitLen() - b.Bits
	u := toU128(b.Parent.Addr())
	off := u128{lo: i}.shl(host)
	lo, c := bits.Add64(u.lo, off.lo, 0)
	u = u128{hi: u.hi + off.hi + c, lo: lo}
	return netip.PrefixFrom(u.addr(b.Parent.Addr().Is4()), b.Bits)
}

// Index returns the index of the block holding a, and false when a is
// outside Parent.
func (b Blocks) Index(a netip.Addr) (uint64, bool) {
	if !b.Parent.Contains(a) {
		return 0, false
	}
	host := a.BitLen() - b.Bits
	return toU128(a).sub(toU128(b.Parent.Addr())).shr(host).lo, true
}

// Block is a block held by a node: its prefix and two bitmaps, bit i
// standing for the address Prefix.Addr()+i. Used marks allocated addresses;
// Reserved marks addresses never handed out (network, broadcast, gateway,
// exclude). An address is free when neither bit is set.
type Block struct {
	Prefix   netip.Prefix
	Used     []uint64
	Reserved []uint64
	// Lost, when set, says why the node may no longer hand out addresses
	// of this block (another node claims it in etcd; it left the node's
	// ranges). Its allocations stay until released; nothing new comes
	// from it.
	Lost string
	// Bound, when set, says the block is no claim of this node's but one
	// address that a sticky workload's record binds to this node (the
	// workload moved here from another node; docs/design.md, "Sticky
	// addresses"). It names the record ("workload/ifname"). Its address is
	// never handed out to anyone else, and the block goes with the last
	// allocation of its address (see Release).
	Bound string
}

// IsBound reports whether b is a bound address rather than a claim.
func (b Block) IsBound() bool { return b.Bound != "" }

// Usable reports whether new addresses may come from the block.
func (b Block) Usable() bool { return b.Lost == "" }

// NewBlock returns an empty block for p with every address inside one of
// reserved marked Reserved. p may hold at most MaxBlockAddrs addresses.
func NewBlock(p netip.Prefix, reserved []netip.Prefix) (Block, error) {
	p = p.Masked()
	if p.Addr().BitLen()-p.Bits() > 16 {
		return Block{}, fmt.Errorf("block %s: more than %d addresses", p, MaxBlockAddrs)
	}
	n := int(Size(p))
	words := (n + 63) / 64
	b := Block{Prefix: p, Used: make([]uint64, words), Reserved: make([]uint64, words)}
	for _, r := range reserved {
		if !r.Overlaps(p) {
			continue
		}
		if Covers(r, p) {
			for i := 0; i < n; i++ {
				b.Reserved[i/64] |= 1 << (i % 64)
			}
			continue
		}
		start := Distance(p.Addr(), r.Masked().Addr())
		for i := uint64(0); i < Size(r); i++ {
			b.Reserved[(start+i)/64] |= 1 << ((start + i) % 64)
		}
	}
	return b, nil
}

// Len returns the number of addresses in the block.
func (b Block) Len() int { return int(Size(b.Prefix)) }

// Offset returns the bit index of a, and false when a is outside the block.
func (b Block) Offset(a netip.Addr) (int, bool) {
	if !b.Prefix.Contains(a) {
		return 0, false
	}
	return int(Distance(b.Prefix.Addr(), a)), true
}

// Addr returns the address of bit i.
func (b Block) Addr(i int) netip.Addr {
	a, _ := Offset(b.Prefix.Addr(), uint64(i))
	return a
}

// IsUsed and IsReserved report bit i of each bitmap.
func (b Block) IsUsed(i int) bool     { return b.Used[i/64]&(1<<(i%64)) != 0 }
func (b Block) IsReserved(i int) bool { return b.Reserved[i/64]&(1<<(i%64)) != 0 }

// SetUsed sets or clears bit i of Used.
func (b Block) SetUsed(i int, used bool) {
	if used {
		b.Used[i/64] |= 1 << (i % 64)
	} else {
		b.Used[i/64] &^= 1 << (i % 64)
	}
}

// InUse returns the number of used addresses.
func (b Block) InUse() int {
	n := 0
	for _, w := range b.Used {
		n += bits.OnesCount64(w)
	}
	return n
}

// Free returns the number of free addresses.
func (b Block) Free() int {
	n := b.Len()
	for i := range b.Used {
		n -= bits.OnesCount64(b.Used[i] | b.Reserved[i])
	}
	return n
}

// NextFree returns the first free bit at or after from, and false if none.
func (b Block) NextFree(from int) (int, bool) {
	n := b.Len()
	for i := from; i < n; {
		w := ^(b.Used[i/64] | b.Reserved[i/64]) >> (i % 64)
		if w != 0 {
			j := i + bits.TrailingZeros64(w)
			if j < n {
				return j, true
			}
			return 0, false
		}
		i = (i/64 + 1) * 64
	}
	return 0, false
}
