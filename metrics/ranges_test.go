package metrics

import (
	"net/netip"
	"testing"

	"github.com/medianet/medianet/ipam"
)

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func TestUsable(t *testing.T) {
	cases := []struct {
		name     string
		r        string
		reserved []string
		want     float64
	}{
		{"ipv4 /24 minus network, broadcast, gateway", "10.0.0.0/24", []string{"10.0.0.0/32", "10.0.0.255/32", "10.0.0.254/32"}, 253},
		{"reserved outside the range", "10.0.0.16/28", []string{"10.0.0.0/32", "10.0.0.255/32"}, 16},
		{"gateway nested in an exclude counts once", "10.0.0.0/24", []string{"10.0.0.0/32", "10.0.0.255/32", "10.0.0.8/29", "10.0.0.9/32"}, 246},
		{"duplicate reserved counts once", "10.0.0.0/28", []string{"10.0.0.5/32", "10.0.0.5/32"}, 15},
		{"exclude covering the range", "10.0.0.16/28", []string{"10.0.0.0/27"}, 0},
		{"ipv6 /64", "fd00::/64", []string{"fd00::/128", "fd00::fe/128"}, 18446744073709551616 - 2},
		{"ipv6 /120 with exclude", "fd00::/120", []string{"fd00::/128", "fd00::80/121"}, 127},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var res []netip.Prefix
			for _, r := range c.reserved {
				res = append(res, pfx(r))
			}
			if got := usable(pfx(c.r), res); got != c.want {
				t.Errorf("usable(%s, %v) = %v, want %v", c.r, c.reserved, got, c.want)
			}
		})
	}
}

// block returns a held block of p (with reserved as the config implies)
// whose first n free addresses are used.
func block(t *testing.T, cfg *ipam.Config, p string, n int, lost bool) blockInfo {
	t.Helper()
	sub, ok := cfg.SubnetOf(pfx(p).Addr())
	if !ok {
		t.Fatalf("block %s outside the config's subnets", p)
	}
	b, err := ipam.NewBlock(pfx(p), cfg.Reserved(sub))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		j, ok := b.NextFree(0)
		if !ok {
			t.Fatalf("block %s: only %d free", p, i)
		}
		b.SetUsed(j, true)
	}
	return blockInfo{prefix: b.Prefix, used: popcount(b.Used), free: b.Free(), lost: lost}
}

func TestSubnetStates(t *testing.T) {
	static := &ipam.Config{Network: "media", Node: "node-a",
		Subnets:    []ipam.Subnet{{Prefix: pfx("10.0.0.0/24"), Gateway: netip.MustParseAddr("10.0.0.254")}},
		BlockSize:  28,
		NodeRanges: map[string][]netip.Prefix{"node-a": {pfx("10.0.0.0/27")}, "node-b": {pfx("10.0.0.32/27")}}}
	single := &ipam.Config{Network: "solo", Node: "node-a", Subnets: []ipam.Subnet{{Prefix: pfx("10.1.0.0/24")}}, BlockSize: 26,
		Exclude: []netip.Prefix{pfx("10.1.0.0/28")}}
	etcd := &ipam.Config{Network: "cluster", Node: "node-a", Subnets: []ipam.Subnet{{Prefix: pfx("10.2.0.0/24")}}, BlockSize: 26}
	cases := []struct {
		name   string
		cfg    *ipam.Config
		blocks []blockInfo
		cl     claims
		want   subnetState
	}{
		{"static ranges, one block partly used", static, []blockInfo{block(t, static, "10.0.0.0/28", 5, false)}, claims{},
			// node-a's /27: 32 addresses less the network address 10.0.0.0 = 31; 5 used.
			subnetState{subnet: pfx("10.0.0.0/24"), inUse: 5, blockFree: 15 - 5, blocks: 1, rangeSize: 31, rangeFree: 26, hasRange: true}},
		{"static ranges, a lost block outside them", static, []blockInfo{
			block(t, static, "10.0.0.0/28", 2, false), block(t, static, "10.0.0.32/28", 3, true)}, claims{},
			subnetState{subnet: pfx("10.0.0.0/24"), inUse: 5, blockFree: 13, blocks: 2, lost: 1, rangeSize: 31, rangeFree: 29, hasRange: true}},
		{"single node, exclude and gateway", single, []blockInfo{block(t, single, "10.1.0.0/26", 10, false)}, claims{},
			// 256 - 16 excluded (network inside) - broadcast - default gateway .1 is excluded already = 239.
			subnetState{subnet: pfx("10.1.0.0/24"), inUse: 10, blockFree: 48 - 10, blocks: 1, rangeSize: 239, rangeFree: 229, hasRange: true}},
		{"etcd, claims by this and another node", etcd, []blockInfo{block(t, etcd, "10.2.0.64/26", 4, false)},
			claims{etcd: true, blocks: []netip.Prefix{pfx("10.2.0.64/26"), pfx("10.2.0.192/26")}},
			// subnet: 256 - network - broadcast - gateway .1 = 253; free: 253 - 64 (ours) - 63 (theirs, less the broadcast) + 60 free in ours.
			subnetState{subnet: pfx("10.2.0.0/24"), inUse: 4, blockFree: 60, blocks: 1, rangeSize: 253, rangeFree: 186, hasRange: true}},
		{"etcd, claims unreadable", etcd, nil, claims{etcd: true, readErr: errTest},
			subnetState{subnet: pfx("10.2.0.0/24"), rangeSize: 253, rangeFree: 253}},
		{"unknown configuration", nil, []blockInfo{block(t, static, "10.0.0.0/28", 3, false)}, claims{},
			subnetState{inUse: 3, blockFree: 12, blocks: 1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := subnetStates(c.cfg, c.blocks, c.cl)
			if len(got) != 1 || got[0] != c.want {
				t.Errorf("subnetStates = %+v, want [%+v]", got, c.want)
			}
		})
	}
}
