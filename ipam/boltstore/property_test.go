package boltstore_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/medianet/medianet/internal/ipamtest"
	"github.com/medianet/medianet/ipam"
)

// TestAllocateReleaseProperty drives random allocations and releases
// against a model: no address is held twice, every address lies in the
// node's ranges and is not reserved, List matches the model, and the store
// passes its consistency check (ipamtest.Store's cleanup).
func TestAllocateReleaseProperty(t *testing.T) {
	tests := []struct {
		name    string
		subnets []string
		ranges  []string
		exclude []string
	}{
		{"v4 ranges", []string{"10.90.0.0/24"}, []string{"10.90.0.0/26", "10.90.0.128/27"}, []string{"10.90.0.5/32", "10.90.0.16/30"}},
		{"v6 whole", []string{"fd00:90::/64"}, nil, []string{"fd00:90::/122"}},
		{"dual", []string{"10.91.0.0/25", "fd00:91::/120"}, nil, []string{"10.91.0.64/28"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ipamtest.Config("prop", tt.subnets...)
			cfg.BlockSize, cfg.BlockSize6 = 28, 124
			for _, e := range tt.exclude {
				cfg.Exclude = append(cfg.Exclude, ipamtest.Prefix(e))
			}
			if tt.ranges != nil {
				cfg.NodeRanges = map[string][]netip.Prefix{}
				for _, r := range tt.ranges {
					cfg.NodeRanges["node-a"] = append(cfg.NodeRanges["node-a"], ipamtest.Prefix(r))
				}
			}
			runProperty(t, cfg, rand.New(rand.NewPCG(3, uint64(len(tt.name)))))
		})
	}
}

func runProperty(t *testing.T, cfg ipam.Config, rng *rand.Rand) {
	a := ipamtest.Allocator(t, cfg, ipamtest.Store(t))
	src := ipam.NewSource(&cfg)
	model := map[string][]netip.Addr{}
	owner := map[netip.Addr]string{}
	for step := range 600 {
		cid := fmt.Sprintf("c%d", rng.IntN(150))
		if ips, ok := model[cid]; ok && rng.IntN(3) == 0 {
			if _, found, err := a.Release(ctx, cid, "eth0"); err != nil || !found {
				t.Fatalf("step %d: Release(%s) = %t, %v", step, cid, found, err)
			}
			for _, ip := range ips {
				delete(owner, ip)
			}
			delete(model, cid)
			continue
		}
		got, err := a.Allocate(ctx, ipam.Request{ContainerID: cid, IfName: "eth0"})
		if errors.Is(err, ipam.ErrExhausted) {
			continue
		}
		if err != nil {
			t.Fatalf("step %d: Allocate(%s): %v", step, cid, err)
		}
		if old, ok := model[cid]; ok {
			if fmt.Sprint(old) != fmt.Sprint(got.IPs) {
				t.Fatalf("step %d: %s re-asked got %v, had %v", step, cid, got.IPs, old)
			}
			continue
		}
		for i, ip := range got.IPs {
			s := cfg.Subnets[i]
			if o, dup := owner[ip]; dup {
				t.Fatalf("step %d: %s given to %s, held by %s", step, ip, cid, o)
			}
			if !inAny(src.Ranges(s.Prefix), ip) || inAny(cfg.Reserved(s), ip) {
				t.Fatalf("step %d: %s outside node ranges or reserved", step, ip)
			}
			owner[ip] = cid
		}
		model[cid] = got.IPs
	}
	list, err := a.List(ctx)
	if err != nil || len(list) != len(model) {
		t.Fatalf("List = %d, %v, want %d", len(list), err, len(model))
	}
	for _, l := range list {
		if fmt.Sprint(l.IPs) != fmt.Sprint(model[l.ContainerID]) {
			t.Errorf("listed %s %v, model %v", l.ContainerID, l.IPs, model[l.ContainerID])
		}
	}
}

func inAny(ps []netip.Prefix, ip netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// flakySource hands out blocks from inner until failing is set, then fails
// as an unreachable cluster store would. It counts calls.
type flakySource struct {
	inner   ipam.BlockSource
	failing bool
	calls   int
}

var errUnreachable = fmt.Errorf("etcd http://192.0.2.1:2379 unreachable: %w", ipam.ErrBusy)

func (f *flakySource) Next(ctx context.Context, s netip.Prefix, bits int, held ipam.Held) (netip.Prefix, error) {
	f.calls++
	if f.failing {
		return netip.Prefix{}, errUnreachable
	}
	return f.inner.Next(ctx, s, bits, held)
}

func (f *flakySource) Containing(ctx context.Context, s netip.Prefix, bits int, a netip.Addr, held ipam.Held) (netip.Prefix, error) {
	if f.failing {
		return netip.Prefix{}, errUnreachable
	}
	return f.inner.Containing(ctx, s, bits, a, held)
}

func (f *flakySource) Available(ctx context.Context, s netip.Prefix, bits int, held ipam.Held) error {
	if f.failing {
		return errUnreachable
	}
	return f.inner.Available(ctx, s, bits, held)
}

func (f *flakySource) Ranges(s netip.Prefix) []netip.Prefix { return f.inner.Ranges(s) }

// TestSourceConsultedRarely: the source is asked once per block, and when
// it fails, free addresses in held blocks are still handed out; only when
// none is left does Allocate fail, with the source's error (ErrBusy).
func TestSourceConsultedRarely(t *testing.T) {
	cfg := ipamtest.Config("flaky", "10.92.0.0/24")
	cfg.BlockSize = 28 // 16 addresses a block
	src := &flakySource{inner: ipam.NewSource(&cfg)}
	a, err := ipam.NewAllocator(cfg, ipamtest.Store(t), src)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 40 { // blocks .0/28 (14 usable), .16/28, .32/28
		if _, err := a.Allocate(ctx, ipam.Request{ContainerID: fmt.Sprint(i), IfName: "eth0"}); err != nil {
			t.Fatal(err)
		}
	}
	if src.calls != 3 {
		t.Errorf("source asked %d times for 40 allocations in /28 blocks, want 3", src.calls)
	}
	for i := range 5 {
		if _, _, err := a.Release(ctx, fmt.Sprint(i), "eth0"); err != nil {
			t.Fatal(err)
		}
	}
	src.failing = true
	// Held: 14 + 16 + 16 = 46 usable; 35 held now, so 11 more fit.
	for i := range 11 {
		if _, err := a.Allocate(ctx, ipam.Request{ContainerID: fmt.Sprint("after", i), IfName: "eth0"}); err != nil {
			t.Fatalf("allocation %d with the source down and free held addresses: %v", i, err)
		}
	}
	_, err = a.Allocate(ctx, ipam.Request{ContainerID: "one-too-many", IfName: "eth0"})
	if !errors.Is(err, ipam.ErrBusy) || errors.Is(err, ipam.ErrExhausted) {
		t.Fatalf("held blocks full, source down: %v, want ErrBusy", err)
	}
}
