package etcd

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/medianet/medianet/internal/etcdtest"
	"github.com/medianet/medianet/internal/etcdtest/simnode"
)

// BenchmarkADD measures one ADD (open the node's store, allocate, close;
// a fresh etcd client per ADD, as a CNI plugin process has) in single-node
// mode and in cluster mode against a real etcd, interleaved in the same
// run, with the default /26 blocks. Reported: p50 and p99 latency of each
// mode, the p50 ratio, the p50 of the ADDs that claimed a block, and etcd
// writes per 1,000 cluster ADDs.
//
//	go test -run '^$' -bench ADD -benchtime 2000x ./test/etcd
func BenchmarkADD(b *testing.B) {
	for _, bc := range []struct {
		name string
		opts etcdtest.Options
	}{
		{"plain", etcdtest.Options{}},
		{"tls+password", etcdtest.Options{TLS: true, Auth: true}},
		{"tls+cert-auth", etcdtest.Options{TLS: true, Auth: true, ClientCN: "medianet"}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			srv := etcdtest.Start(b, bc.opts)
			single := makeNodes(b, 1, nil, "10.32.0.0/12", 0)[0]
			ecfg := etcdConfig(srv)
			if bc.opts.ClientCN != "" {
				ecfg.Username, ecfg.Password = "", "" // the certificate names the user
			}
			cluster := makeNodes(b, 1, ecfg, "10.48.0.0/12", 0)[0]
			ctx := context.Background()
			var ts, tc, claims []time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for _, m := range []struct {
					n   *simnode.Node
					out *[]time.Duration
				}{{single, &ts}, {cluster, &tc}} {
					before := m.n.Contacts.Load()
					start := time.Now()
					if _, err := m.n.Allocate(ctx, fmt.Sprintf("c%d", i)); err != nil {
						b.Fatalf("%s ADD %d: %v", m.n.Name, i, err)
					}
					took := time.Since(start)
					*m.out = append(*m.out, took)
					if m.n.Contacts.Load() != before {
						claims = append(claims, took)
					}
				}
			}
			b.StopTimer()
			p50s, p99s := percentile(ts, 50), percentile(ts, 99)
			p50c, p99c := percentile(tc, 50), percentile(tc, 99)
			b.ReportMetric(us(p50s), "single-p50-µs")
			b.ReportMetric(us(p99s), "single-p99-µs")
			b.ReportMetric(us(p50c), "cluster-p50-µs")
			b.ReportMetric(us(p99c), "cluster-p99-µs")
			b.ReportMetric(float64(p50c)/float64(p50s), "p50-ratio")
			b.ReportMetric(us(percentile(claims, 50)), "claiming-ADD-p50-µs")
			b.ReportMetric(float64(cluster.Writes.Load())*1000/float64(b.N), "etcd-writes/1000-ADDs")
			b.ReportMetric(float64(cluster.Contacts.Load())*1000/float64(b.N), "etcd-contacts/1000-ADDs")
		})
	}
}

func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*p/100)]
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
