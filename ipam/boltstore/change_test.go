package boltstore_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/medianet/medianet/internal/ipamtest"
	"github.com/medianet/medianet/ipam"
)

// fillUntilExhausted allocates until the network is full and returns the
// addresses handed out, failing on any other error.
func fillUntilExhausted(t *testing.T, a *ipam.Allocator, prefix string) []netip.Addr {
	t.Helper()
	var out []netip.Addr
	for i := 0; ; i++ {
		got, err := a.Allocate(ctx, ipam.Request{ContainerID: fmt.Sprintf("%s-%d", prefix, i), IfName: "eth0"})
		if errors.Is(err, ipam.ErrExhausted) {
			return out
		}
		if err != nil {
			t.Fatalf("Allocate %s-%d: %v", prefix, i, err)
		}
		out = append(out, got.IPs...)
		if i > 70000 {
			t.Fatal("no exhaustion after 70000 allocations")
		}
	}
}

// TestReservedFollowCurrentConfig: an operator adds exclude entries and
// moves the gateway on a network whose node already holds its block. No
// later ADD hands out an excluded address or the new gateway; the old
// gateway becomes usable; addresses that became reserved while allocated
// stay with their containers and are reported by Check.
func TestReservedFollowCurrentConfig(t *testing.T) {
	for _, tt := range []struct {
		name, subnet, oldGW, newGW string
		exclude                    []string
		holders                    int
	}{
		{"v4", "10.204.0.0/27", "10.204.0.30", "10.204.0.10", []string{"10.204.0.3", "10.204.0.4/30"}, 5},
		{"v6", "fd00:204::/123", "fd00:204::1e", "fd00:204::a", []string{"fd00:204::3", "fd00:204::4/126"}, 5},
	} {
		t.Run(tt.name, func(t *testing.T) {
			st := ipamtest.Store(t)
			cfg := ipamtest.Config("media", tt.subnet)
			cfg.Subnets[0].Gateway = ipamtest.Addr(tt.oldGW)
			before := ipamtest.Allocator(t, cfg, st)
			held := map[netip.Addr]string{}
			for i := range tt.holders {
				a := alloc(t, before, fmt.Sprintf("old-%d", i))
				held[a.IPs[0]] = a.ContainerID
			}
			cfg.Subnets[0].Gateway = ipamtest.Addr(tt.newGW)
			for _, e := range tt.exclude {
				p, err := ipam.ParseRange(e)
				if err != nil {
					t.Fatal(err)
				}
				cfg.Exclude = append(cfg.Exclude, p)
			}
			after := ipamtest.Allocator(t, cfg, st)
			// The allocator's own view finds the holders of now-reserved
			// addresses before any write.
			findings, err := after.Check(ctx)
			if err != nil {
				t.Fatal(err)
			}
			reservedInUse := 0
			for _, f := range findings {
				if f.Kind == ipam.FindingReservedInUse {
					reservedInUse++
					if held[f.Addr] != f.Holder.ContainerID {
						t.Errorf("finding %v: %s is held by %s", f, f.Addr, held[f.Addr])
					}
				}
			}
			if reservedInUse != 3 { // .3, .4, .5 were handed out before the change
				t.Errorf("reserved-in-use findings = %d (%v), want 3", reservedInUse, findings)
			}
			// old-3 holds the 4th address, now excluded: released, it must
			// never be handed out again.
			if _, _, err := after.Release(ctx, "old-3", "eth0"); err != nil {
				t.Fatal(err)
			}
			got := fillUntilExhausted(t, after, "new")
			forbidden := func(ip netip.Addr) bool {
				if ip == cfg.Subnets[0].Gateway {
					return true
				}
				return slices.ContainsFunc(cfg.Exclude, func(p netip.Prefix) bool { return p.Contains(ip) })
			}
			for _, ip := range got {
				if forbidden(ip) {
					t.Errorf("handed out %s after the config reserved it", ip)
				}
			}
			if !slices.Contains(got, ipamtest.Addr(tt.oldGW)) {
				t.Errorf("old gateway %s never handed out after the gateway moved; got %v", tt.oldGW, got)
			}
			for ip, cid := range held {
				if cid == "old-3" {
					continue
				}
				a, err := after.Get(ctx, cid, "eth0")
				if err != nil || a.IPs[0] != ip {
					t.Errorf("%s lost its address %s: %v, %v", cid, ip, a.IPs, err)
				}
			}
			// After the first write, the store itself records the new
			// reserved bits: Check without the config agrees.
			findings, err = ipam.Check(ctx, st)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, f := range findings {
				if f.Kind == ipam.FindingReservedInUse {
					n++
				}
			}
			if n != 2 { // old-3 released its address
				t.Errorf("store's reserved-in-use findings = %d (%v), want 2", n, findings)
			}
		})
	}
}

// TestBlockSizeChange: blockSize changed both ways while blocks are held.
// Old blocks keep serving, new blocks have the new size and overlap none
// of the old, and nothing livelocks (the allocation used to fail with
// "did not settle" forever).
func TestBlockSizeChange(t *testing.T) {
	for _, tt := range []struct {
		name       string
		from, to   int
		subnet     string
		firstAlloc int
	}{
		{"grow v4 /28 to /26", 28, 26, "10.60.0.0/24", 20},
		{"shrink v4 /26 to /28", 26, 28, "10.61.0.0/24", 70},
		{"grow v6 /124 to /120", 124, 120, "fd00:61::/119", 20},
	} {
		t.Run(tt.name, func(t *testing.T) {
			st := ipamtest.Store(t)
			cfg := ipamtest.Config("media", tt.subnet)
			setSize := func(bits int) {
				if cfg.Subnets[0].Prefix.Addr().Is4() {
					cfg.BlockSize = bits
				} else {
					cfg.BlockSize6 = bits
				}
			}
			setSize(tt.from)
			first := ipamtest.Allocator(t, cfg, st)
			var old []netip.Addr
			for i := range tt.firstAlloc {
				old = append(old, alloc(t, first, fmt.Sprintf("old-%d", i)).IPs...)
			}
			oldBlocks := blocksOf(t, st, "media")
			setSize(tt.to)
			second := ipamtest.Allocator(t, cfg, st)
			// Release one old address: it must be reused (old blocks serve).
			if _, _, err := second.Release(ctx, "old-0", "eth0"); err != nil {
				t.Fatal(err)
			}
			got := fillUntilExhausted(t, second, "new")
			if !slices.Contains(got, old[0]) {
				t.Errorf("released %s of an old block never handed out again", old[0])
			}
			seen := map[netip.Addr]bool{}
			for _, ip := range append(old[1:], got...) {
				if seen[ip] {
					t.Fatalf("%s handed out twice", ip)
				}
				seen[ip] = true
			}
			all := blocksOf(t, st, "media")
			for _, p := range all {
				if !slices.Contains(oldBlocks, p) && p.Bits() != tt.to && !anyOverlap(oldBlocks, p) {
					t.Errorf("new block %s is not a /%d", p, tt.to)
				}
			}
			for i, p := range all {
				for _, q := range all[i+1:] {
					if p.Overlaps(q) {
						t.Errorf("held blocks overlap: %s and %s", p, q)
					}
				}
			}
		})
	}
}

func anyOverlap(ps []netip.Prefix, p netip.Prefix) bool {
	return slices.ContainsFunc(ps, p.Overlaps)
}

func blocksOf(t *testing.T, st ipam.Store, network string) []netip.Prefix {
	t.Helper()
	var out []netip.Prefix
	err := st.View(ctx, func(tx ipam.Tx) error {
		return tx.ForEachBlock(network, func(b ipam.Block) error {
			out = append(out, b.Prefix)
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestNodeRemovedFromRanges: node a is removed from nodeRanges and its
// range given to node c. a can no longer allocate (a config error naming
// it), marks its old block lost, and still releases and collects what it
// holds; its STATUS says so.
func TestNodeRemovedFromRanges(t *testing.T) {
	st := ipamtest.Store(t)
	cfg := ipamtest.Config("media", "10.70.0.0/24")
	cfg.Node = "a"
	cfg.NodeRanges = map[string][]netip.Prefix{"a": {ipamtest.Prefix("10.70.0.0/26")}, "b": {ipamtest.Prefix("10.70.0.64/26")}}
	before := ipamtest.Allocator(t, cfg, st)
	for i := range 3 {
		alloc(t, before, fmt.Sprintf("c%d", i))
	}
	cfg.NodeRanges = map[string][]netip.Prefix{"c": {ipamtest.Prefix("10.70.0.0/26")}, "b": {ipamtest.Prefix("10.70.0.64/26")}}
	after, err := ipam.NewAllocator(cfg, st, nil)
	if err != nil {
		t.Fatalf("a config without this node's range must load (DEL, GC): %v", err)
	}
	_, err = after.Allocate(ctx, ipam.Request{ContainerID: "new", IfName: "eth0"})
	if !errors.Is(err, ipam.ErrConfig) || !strings.Contains(err.Error(), `no range for node "a"`) {
		t.Fatalf("Allocate on a node without a range = %v, want ErrConfig naming the node", err)
	}
	if err := after.Status(ctx); !errors.Is(err, ipam.ErrBlockLost) || !strings.Contains(err.Error(), "10.70.0.0/26") {
		t.Errorf("Status = %v, want ErrBlockLost naming the block", err)
	}
	if _, ok, err := after.Release(ctx, "c0", "eth0"); err != nil || !ok {
		t.Errorf("Release on a node without a range = %v, %v", ok, err)
	}
	gone, err := after.GC(ctx, []ipam.Attachment{{ContainerID: "c1", IfName: "eth0"}})
	if err != nil || len(gone) != 1 || gone[0].ContainerID != "c2" {
		t.Errorf("GC on a node without a range = %v, %v; want c2 released", gone, err)
	}
	findings, err := after.Check(ctx)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, f := range findings {
		kinds[f.Kind]++
	}
	if kinds[ipam.FindingLostBlock] != 1 || kinds[ipam.FindingInLostBlock] != 1 {
		t.Errorf("findings %v: want the lost block and c1 in it", findings)
	}
	// Given its range back, the node allocates again from its block.
	cfg.NodeRanges["a"] = []netip.Prefix{ipamtest.Prefix("10.70.0.128/26")}
	again := ipamtest.Allocator(t, cfg, st)
	got := alloc(t, again, "again")
	if !ipamtest.Prefix("10.70.0.128/26").Contains(got.IPs[0]) {
		t.Errorf("allocation with the new range = %v, want it in 10.70.0.128/26", got.IPs)
	}
}

type ctxT = context.Context

// countingSource counts the calls that could claim or write.
type countingSource struct {
	ipam.BlockSource
	next, containing int
}

func (c *countingSource) Next(ctx2 ctxT, s netip.Prefix, bits int, held ipam.Held) (netip.Prefix, error) {
	c.next++
	return c.BlockSource.Next(ctx2, s, bits, held)
}

func (c *countingSource) Containing(ctx2 ctxT, s netip.Prefix, bits int, a netip.Addr, held ipam.Held) (netip.Prefix, error) {
	c.containing++
	return c.BlockSource.Containing(ctx2, s, bits, a, held)
}

// TestStatusNeverWrites: STATUS on a full block asks the source whether
// it could give a block, never for one, and leaves the store as it was.
func TestStatusNeverWrites(t *testing.T) {
	st := ipamtest.Store(t)
	cfg := ipamtest.Config("media", "10.71.0.0/24")
	cfg.BlockSize = 30
	src := &countingSource{BlockSource: ipam.NewSource(&cfg)}
	a, err := ipam.NewAllocator(cfg, st, src)
	if err != nil {
		t.Fatal(err)
	}
	alloc(t, a, "c0")
	alloc(t, a, "c1") // the first /30 (.0 reserved) holds .1 .2 .3: not full yet
	alloc(t, a, "c2")
	src.next = 0
	before := blocksOf(t, st, "media")
	for range 3 {
		if err := a.Status(ctx); err != nil {
			t.Fatalf("Status = %v", err)
		}
	}
	if src.next != 0 || src.containing != 0 {
		t.Errorf("Status asked the source for blocks: Next %d, Containing %d", src.next, src.containing)
	}
	if after := blocksOf(t, st, "media"); !slices.Equal(before, after) {
		t.Errorf("Status changed the held blocks: %v -> %v", before, after)
	}
}
