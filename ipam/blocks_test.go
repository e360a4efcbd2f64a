package ipam

import (
	"math/rand/v2"
	"net/netip"
	"testing"
)

// TestSplitProperty: blocks are disjoint, inside the parent, cover it, and
// Index inverts At, for IPv4 and IPv6 parents of many sizes.
func TestSplitProperty(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	parents := []string{"10.0.0.0/24", "192.168.100.0/22", "10.0.0.0/30", "fd00::/120", "fd00:1::/116", "fd00::/126"}
	for _, ps := range parents {
		parent := netip.MustParsePrefix(ps)
		for bits := parent.Bits(); bits <= parent.Addr().BitLen(); bits++ {
			blocks, err := Split(parent, bits)
			if err != nil {
				t.Fatalf("Split(%s, %d): %v", parent, bits, err)
			}
			checkCover(t, parent, blocks)
		}
	}
	// Huge splits: sampled, never materialised.
	for _, tt := range []struct {
		parent string
		bits   int
	}{{"fd00::/64", 120}, {"10.0.0.0/8", 26}, {"2001:db8::/32", 95}} {
		parent := netip.MustParsePrefix(tt.parent)
		blocks, err := Split(parent, tt.bits)
		if err != nil {
			t.Fatalf("Split(%s, %d): %v", parent, tt.bits, err)
		}
		if got, want := blocks.Len(), uint64(1)<<(tt.bits-parent.Bits()); got != want {
			t.Errorf("Split(%s, %d).Len() = %d, want %d", parent, tt.bits, got, want)
		}
		last := blocks.At(blocks.Len() - 1)
		if LastAddr(last) != LastAddr(parent) {
			t.Errorf("last block %s ends at %s, parent at %s", last, LastAddr(last), LastAddr(parent))
		}
		for range 1000 {
			i := rng.Uint64N(blocks.Len() - 1)
			b, next := blocks.At(i), blocks.At(i+1)
			if !Covers(parent, b) || b.Bits() != tt.bits {
				t.Fatalf("block %d = %s not a /%d inside %s", i, b, tt.bits, parent)
			}
			if LastAddr(b).Next() != next.Addr() {
				t.Fatalf("block %d %s and %d %s are not adjacent", i, b, i+1, next)
			}
			if j, ok := blocks.Index(LastAddr(b)); !ok || j != i {
				t.Fatalf("Index(%s) = %d, %t, want %d", LastAddr(b), j, ok, i)
			}
		}
	}
}

func checkCover(t *testing.T, parent netip.Prefix, blocks Blocks) {
	t.Helper()
	next := parent.Addr()
	for i := uint64(0); i < blocks.Len(); i++ {
		b := blocks.At(i)
		if !Covers(parent, b) {
			t.Fatalf("%s/%d block %d = %s is outside the parent", parent, blocks.Bits, i, b)
		}
		if b.Addr() != next { // adjacent and ascending: disjoint, no gap
			t.Fatalf("%s/%d block %d = %s, want it to start at %s", parent, blocks.Bits, i, b, next)
		}
		if j, ok := blocks.Index(b.Addr()); !ok || j != i {
			t.Fatalf("Index(%s) = %d, %t, want %d", b.Addr(), j, ok, i)
		}
		next = LastAddr(b).Next()
	}
	if want := LastAddr(parent).Next(); next != want {
		t.Fatalf("%s/%d blocks end before %s, want %s", parent, blocks.Bits, next, want)
	}
}

func TestSplitErrors(t *testing.T) {
	tests := []struct {
		parent string
		bits   int
	}{{"10.0.0.0/24", 23}, {"10.0.0.0/24", 33}, {"fd00::/32", 120}, {"fd00::/64", 129}}
	for _, tt := range tests {
		if _, err := Split(netip.MustParsePrefix(tt.parent), tt.bits); err == nil {
			t.Errorf("Split(%s, %d) succeeded, want error", tt.parent, tt.bits)
		}
	}
}

func TestBlockBitmap(t *testing.T) {
	tests := []struct {
		block    string
		reserved []string
		free     int
		first    string
	}{
		{"10.0.0.0/26", []string{"10.0.0.0/32", "10.0.0.1/32"}, 62, "10.0.0.2"},
		{"10.0.0.0/28", []string{"10.0.0.0/29", "10.0.0.9/32"}, 7, "10.0.0.8"},
		{"10.0.0.0/28", []string{"10.0.0.0/8"}, 0, ""},
		{"fd00::/120", []string{"fd00::/128", "fd00::1/128", "fd00::80/121"}, 126, "fd00::2"},
		{"fd00::/112", nil, 65536, "fd00::"},
	}
	for _, tt := range tests {
		var res []netip.Prefix
		for _, r := range tt.reserved {
			res = append(res, netip.MustParsePrefix(r))
		}
		b, err := NewBlock(netip.MustParsePrefix(tt.block), res)
		if err != nil {
			t.Fatalf("NewBlock(%s): %v", tt.block, err)
		}
		if got := b.Free(); got != tt.free {
			t.Errorf("block %s free = %d, want %d", tt.block, got, tt.free)
		}
		off, ok := b.NextFree(0)
		if tt.first == "" {
			if ok {
				t.Errorf("block %s NextFree = %s, want none", tt.block, b.Addr(off))
			}
			continue
		}
		if !ok || b.Addr(off).String() != tt.first {
			t.Errorf("block %s NextFree = %s, %t, want %s", tt.block, b.Addr(off), ok, tt.first)
		}
		b.SetUsed(off, true)
		if got := b.Free(); got != tt.free-1 {
			t.Errorf("block %s after one use free = %d, want %d", tt.block, got, tt.free-1)
		}
	}
	if _, err := NewBlock(netip.MustParsePrefix("fd00::/111"), nil); err == nil {
		t.Errorf("NewBlock(/111) succeeded, want too large")
	}
}
