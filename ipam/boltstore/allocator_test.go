package boltstore_test

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/medianet/medianet/internal/ipamtest"
	"github.com/medianet/medianet/ipam"
)

var ctx = context.Background()

func alloc(t *testing.T, a *ipam.Allocator, cid string, ips ...string) ipam.Allocation {
	t.Helper()
	req := ipam.Request{ContainerID: cid, IfName: "eth0"}
	for _, s := range ips {
		req.IPs = append(req.IPs, ipamtest.Addr(s))
	}
	got, err := a.Allocate(ctx, req)
	if err != nil {
		t.Fatalf("Allocate(%s, %v): %v", cid, ips, err)
	}
	return got
}

func TestAllocateFamilies(t *testing.T) {
	tests := []struct {
		name    string
		subnets []string
		exclude []string
		want    []string // first two allocations, joined by ","
	}{
		{"v4", []string{"192.168.100.0/24"}, nil, []string{"192.168.100.2", "192.168.100.3"}},
		{"v4 exclude", []string{"192.168.100.0/24"}, []string{"192.168.100.2/31"}, []string{"192.168.100.4", "192.168.100.5"}},
		{"v6", []string{"fd00:1::/64"}, nil, []string{"fd00:1::2", "fd00:1::3"}},
		{"v6 exclude", []string{"fd00:1::/64"}, []string{"fd00:1::/120"}, []string{"fd00:1::100", "fd00:1::101"}},
		{"dual", []string{"10.9.0.0/24", "fd00:9::/120"}, nil, []string{"10.9.0.2 fd00:9::2", "10.9.0.3 fd00:9::3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ipamtest.Config("media", tt.subnets...)
			for _, e := range tt.exclude {
				cfg.Exclude = append(cfg.Exclude, ipamtest.Prefix(e))
			}
			a := ipamtest.Allocator(t, cfg, ipamtest.Store(t))
			for i, want := range tt.want {
				got := alloc(t, a, "c"+string(rune('0'+i)))
				if s := addrs(got.IPs); s != want {
					t.Errorf("allocation %d = %s, want %s", i, s, want)
				}
			}
		})
	}
}

func addrs(ips []netip.Addr) string {
	s := make([]string, len(ips))
	for i, ip := range ips {
		s[i] = ip.String()
	}
	return strings.Join(s, " ")
}

func TestAllocateIdempotent(t *testing.T) {
	a := ipamtest.Allocator(t, ipamtest.Config("media", "10.1.0.0/24", "fd00:1::/64"), ipamtest.Store(t))
	first := alloc(t, a, "c1")
	again := alloc(t, a, "c1")
	if addrs(first.IPs) != addrs(again.IPs) {
		t.Errorf("second Allocate = %v, want %v", again.IPs, first.IPs)
	}
	other := alloc(t, a, "c1") // same key; and a different ifname is a new attachment
	got, err := a.Allocate(ctx, ipam.Request{ContainerID: "c1", IfName: "net1"})
	if err != nil || addrs(got.IPs) == addrs(other.IPs) {
		t.Errorf("Allocate(c1, net1) = %v, %v, want new addresses", got.IPs, err)
	}
	list, err := a.List(ctx)
	if err != nil || len(list) != 2 {
		t.Errorf("List() = %d allocations, %v, want 2", len(list), err)
	}
}

func TestAllocateRequested(t *testing.T) {
	cfg := ipamtest.Config("media", "192.168.100.0/24")
	cfg.Subnets[0].Gateway = ipamtest.Addr("192.168.100.254")
	cfg.Exclude = []netip.Prefix{ipamtest.Prefix("192.168.100.1/32")}
	cfg.NodeRanges = map[string][]netip.Prefix{"node-a": {ipamtest.Prefix("192.168.100.0/25")}, "node-b": {ipamtest.Prefix("192.168.100.128/25")}}
	a := ipamtest.Allocator(t, cfg, ipamtest.Store(t))
	if got := alloc(t, a, "c1", "192.168.100.77"); addrs(got.IPs) != "192.168.100.77" {
		t.Fatalf("requested 192.168.100.77, got %v", got.IPs)
	}
	tests := []struct {
		ip, msg string
		is      error
	}{
		{"192.168.100.77", "held by c1/eth0", ipam.ErrTaken},
		{"192.168.100.200", "outside this node's ranges 192.168.100.0/25", ipam.ErrOutOfRange},
		{"192.168.100.1", "reserved", ipam.ErrOutOfRange},
		{"192.168.100.0", "reserved", ipam.ErrOutOfRange},
		{"10.0.0.1", "outside the subnets 192.168.100.0/24", ipam.ErrOutOfRange},
	}
	for _, tt := range tests {
		_, err := a.Allocate(ctx, ipam.Request{ContainerID: "c2", IfName: "eth0", IPs: []netip.Addr{ipamtest.Addr(tt.ip)}})
		if !errors.Is(err, tt.is) || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("request %s: error %v, want %v naming %q", tt.ip, err, tt.is, tt.msg)
		}
	}
	if _, err := a.Get(ctx, "c2", "eth0"); !errors.Is(err, ipam.ErrNotFound) {
		t.Errorf("after failed requests Get(c2) error = %v, want ErrNotFound (nothing allocated)", err)
	}
	// The same attachment asking again for its address is fine; for another is not.
	alloc(t, a, "c1", "192.168.100.77")
	if _, err := a.Allocate(ctx, ipam.Request{ContainerID: "c1", IfName: "eth0", IPs: []netip.Addr{ipamtest.Addr("192.168.100.78")}}); !errors.Is(err, ipam.ErrTaken) {
		t.Errorf("c1 asking for a second address: %v, want ErrTaken", err)
	}
	// Round-robin allocation skips the requested address.
	for i := range 3 {
		if got := alloc(t, a, "rr"+string(rune('a'+i))); got.IPs[0].String() == "192.168.100.77" {
			t.Fatalf("requested address handed out again")
		}
	}
}

func TestRoundRobin(t *testing.T) {
	for _, subnet := range []string{"10.2.0.0/28", "fd00:2::/124"} {
		t.Run(subnet, func(t *testing.T) {
			cfg := ipamtest.Config("media", subnet)
			cfg.BlockSize, cfg.BlockSize6 = 30, 126
			a := ipamtest.Allocator(t, cfg, ipamtest.Store(t))
			first := alloc(t, a, "c0")
			if _, _, err := a.Release(ctx, "c0", "eth0"); err != nil {
				t.Fatal(err)
			}
			seen := map[netip.Addr]bool{}
			// 16 addresses - network, gateway (and v4 broadcast) = 13 or 14.
			usable := 16 - len(ipam.NetworkAndBroadcast(ipamtest.Prefix(subnet))) - 1
			for i := 1; i < usable; i++ {
				got := alloc(t, a, "c"+string(rune('a'+i)))
				if got.IPs[0] == first.IPs[0] {
					t.Fatalf("released %s reused at allocation %d of %d, before the rest of the range", first.IPs[0], i, usable)
				}
				if seen[got.IPs[0]] {
					t.Fatalf("duplicate %s", got.IPs[0])
				}
				seen[got.IPs[0]] = true
			}
			if got := alloc(t, a, "last"); got.IPs[0] != first.IPs[0] {
				t.Errorf("last free address = %s, want the released %s", got.IPs[0], first.IPs[0])
			}
			_, err := a.Allocate(ctx, ipam.Request{ContainerID: "over", IfName: "eth0"})
			if !errors.Is(err, ipam.ErrExhausted) || !strings.Contains(err.Error(), `network "media"`) || !strings.Contains(err.Error(), subnet) {
				t.Errorf("over-allocation error = %v, want ErrExhausted naming network and range", err)
			}
			if err := a.Status(ctx); !errors.Is(err, ipam.ErrExhausted) {
				t.Errorf("Status() = %v, want ErrExhausted", err)
			}
		})
	}
}

func TestDualStackAtomic(t *testing.T) {
	// The IPv6 side has exactly one usable address: the second allocation
	// must fail without taking an IPv4 address.
	cfg := ipamtest.Config("media", "10.3.0.0/24", "fd00:3::/126")
	cfg.Exclude = []netip.Prefix{ipamtest.Prefix("fd00:3::3/128")}
	st := ipamtest.Store(t)
	a := ipamtest.Allocator(t, cfg, st)
	alloc(t, a, "c1")
	if _, err := a.Allocate(ctx, ipam.Request{ContainerID: "c2", IfName: "eth0"}); !errors.Is(err, ipam.ErrExhausted) {
		t.Fatalf("second dual-stack allocation: %v, want ErrExhausted", err)
	}
	list, _ := a.List(ctx)
	if len(list) != 1 {
		t.Errorf("after failed dual-stack allocation, %d allocations, want 1", len(list))
	}
	if err := a.Status(ctx); !errors.Is(err, ipam.ErrExhausted) {
		t.Errorf("Status() = %v, want ErrExhausted", err)
	}
	if _, _, err := a.Release(ctx, "c1", "eth0"); err != nil {
		t.Fatal(err)
	}
	if err := a.Status(ctx); err != nil {
		t.Errorf("Status() after release = %v, want nil", err)
	}
}

func TestNodeRangesGrowBlocks(t *testing.T) {
	// node-a holds two /28 ranges with /30 blocks: allocation moves through
	// blocks and stays inside node-a's ranges.
	cfg := ipamtest.Config("media", "10.4.0.0/24")
	cfg.BlockSize = 30
	cfg.NodeRanges = map[string][]netip.Prefix{
		"node-a": {ipamtest.Prefix("10.4.0.16/28"), ipamtest.Prefix("10.4.0.64/28")},
		"node-b": {ipamtest.Prefix("10.4.0.32/28")},
	}
	a := ipamtest.Allocator(t, cfg, ipamtest.Store(t))
	seen := map[netip.Addr]bool{}
	for i := range 32 {
		got := alloc(t, a, "c"+string(rune('A'+i)))
		ip := got.IPs[0]
		if !cfg.NodeRanges["node-a"][0].Contains(ip) && !cfg.NodeRanges["node-a"][1].Contains(ip) {
			t.Fatalf("allocation %d = %s, outside node-a's ranges", i, ip)
		}
		if seen[ip] {
			t.Fatalf("duplicate %s", ip)
		}
		seen[ip] = true
	}
	_, err := a.Allocate(ctx, ipam.Request{ContainerID: "over", IfName: "eth0"})
	if !errors.Is(err, ipam.ErrExhausted) || !strings.Contains(err.Error(), "10.4.0.16/28, 10.4.0.64/28") {
		t.Errorf("exhaustion error = %v, want the node's ranges named", err)
	}
}

func TestGC(t *testing.T) {
	a := ipamtest.Allocator(t, ipamtest.Config("media", "10.5.0.0/24"), ipamtest.Store(t))
	b := ipamtest.Allocator(t, ipamtest.Config("other", "10.6.0.0/24"), ipamtest.Store(t))
	for _, c := range []string{"c1", "c2", "c3"} {
		alloc(t, a, c)
	}
	alloc(t, b, "c9")
	released, err := a.GC(ctx, []ipam.Attachment{{ContainerID: "c2", IfName: "eth0"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(released) != 2 || released[0].ContainerID == "c2" || released[1].ContainerID == "c2" {
		t.Errorf("GC released %v, want c1 and c3", released)
	}
	list, _ := a.List(ctx)
	if len(list) != 1 || list[0].ContainerID != "c2" {
		t.Errorf("after GC, list = %v, want c2 only", list)
	}
	if l, _ := b.List(ctx); len(l) != 1 {
		t.Errorf("GC of media touched network other: %v", l)
	}
	if _, found, err := a.Release(ctx, "c1", "eth0"); err != nil || found {
		t.Errorf("Release of GC'd c1 = found %t, %v, want not found, nil", found, err)
	}
}
