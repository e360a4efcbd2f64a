package etcdstore

import (
	"fmt"
	"net/netip"
	"testing"
)

// BenchmarkPickerCollisions simulates, without etcd, a cold start of a
// large cluster: every node claims its first block, then every node its
// second, and so on, through the picker (seeded walk). It reports the
// mean number of claim transactions per block and the share of claims
// that fall back to listing the claimed set (more than `probes` taken
// candidates), for the scaling estimate in docs/ipam-etcd.md.
//
//	go test -run '^$' -bench PickerCollisions ./ipam/etcdstore
func BenchmarkPickerCollisions(b *testing.B) {
	cases := []struct {
		subnet      string
		bits        int
		nodes, each int
	}{
		{"10.0.0.0/12", 26, 5000, 2},
		{"10.0.0.0/12", 26, 5000, 3},
		{"10.0.0.0/11", 26, 5000, 2},
		{"10.0.0.0/12", 25, 5000, 1},
		{"fd00::/64", 120, 5000, 3},
	}
	for _, c := range cases {
		name := fmt.Sprintf("%s_in_/%d_%dnodes_x%d", c.subnet, c.bits, c.nodes, c.each)
		b.Run(name, func(b *testing.B) {
			s := Subnet{Prefix: netip.MustParsePrefix(c.subnet), BlockBits: c.bits}
			n := Network{Name: "sim", Subnets: []Subnet{s}}
			var txns, fallbacks, claims int
			for i := 0; i < b.N; i++ {
				claimed := map[netip.Prefix]string{}
				for round := 0; round < c.each; round++ {
					for node := 0; node < c.nodes; node++ {
						name := fmt.Sprintf("node-%d", node)
						taken := 0
						blk, ok := n.walk(s, s.seed(name), func(p netip.Prefix) bool {
							owner, ok := claimed[p]
							if ok && owner != name {
								taken++ // a failed claim transaction
							}
							return ok // held blocks are skipped without one
						})
						if !ok {
							b.Fatalf("subnet full after %d claims", claims)
						}
						claimed[blk] = name
						claims++
						if taken >= probes {
							fallbacks++
							txns += probes + 1 // failed probes, then the pick after the list
						} else {
							txns += taken + 1
						}
					}
				}
			}
			b.ReportMetric(float64(txns)/float64(claims), "txns/claim")
			b.ReportMetric(100*float64(fallbacks)/float64(claims), "fallback-%")
			b.ReportMetric(100*float64(c.nodes*c.each)/float64(s.count()), "subnet-claimed-%")
		})
	}
}
