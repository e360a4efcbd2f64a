package dockerplugin

import (
	"context"
	"net/netip"
	"slices"
	"testing"
)

func TestIPAMNetworks(t *testing.T) {
	h := newHarness(t, Config{Node: "node-b"}, newFakeLinks())
	h.pool("10.96.0.0/24", "", "10.96.0.254", nil)
	h.pool("10.96.1.0/24", "10.96.1.64/26", "", nil)
	h.pool("10.96.2.0/24", "", "", map[string]string{"block-size": "28", "node-ranges": "node-a=10.96.2.0/28,node-b=10.96.2.16/28"})
	static, etcd, err := h.d.IPAMNetworks(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(etcd) != 0 {
		t.Errorf("etcd networks = %+v, want none (no pool claims its blocks in etcd)", etcd)
	}
	got := map[netip.Prefix][]netip.Prefix{}
	for _, c := range static {
		if c.Node != "node-b" || len(c.Subnets) != 1 {
			t.Fatalf("config %+v: want node-b and one subnet", c)
		}
		got[c.Subnets[0].Prefix] = c.NodeRanges[c.Node]
	}
	tests := []struct {
		subnet string
		ranges []netip.Prefix // nil: the whole subnet
	}{
		{"10.96.0.0/24", nil},
		{"10.96.1.0/24", []netip.Prefix{netip.MustParsePrefix("10.96.1.64/26")}},
		{"10.96.2.0/24", []netip.Prefix{netip.MustParsePrefix("10.96.2.16/28")}},
	}
	if len(got) != len(tests) {
		t.Fatalf("static networks %v, want %d", got, len(tests))
	}
	for _, tt := range tests {
		r, ok := got[netip.MustParsePrefix(tt.subnet)]
		if !ok || !slices.Equal(r, tt.ranges) {
			t.Errorf("pool %s: ranges %v (listed %v), want %v", tt.subnet, r, ok, tt.ranges)
		}
	}
}
