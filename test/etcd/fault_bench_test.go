package etcd

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/medianet/medianet/internal/etcdtest"
)

// BenchmarkAddBesideBlackholedClaim measures exec'd ADD latency (the real
// medianet-ipam, which runs medianet-ipam-etcd) on a network whose node
// has room, first with etcd healthy, then with etcd blackholed while
// another network of the same node keeps a block claim waiting on it.
// No network call runs under the node's store lock, so the ratio of the
// two should stay near 1 (target <= 1.2); before that lock was taken per
// transaction, each ADD waited for the hung claim (about 2 s).
//
//	go test -run '^$' -bench BlackholedClaim -benchtime 50x ./test/etcd
func BenchmarkAddBesideBlackholedClaim(b *testing.B) {
	srv := etcdtest.StartInNS(b, etcdtest.Options{})
	dir := b.TempDir()
	ek := map[string]any{"endpoints": srv.Endpoints(), "prefix": "/medianet-bench", "requestTimeout": "2s"}
	roomy := netConf{node: "a", dir: dir, name: "roomy", subnet: "10.94.0.0/16", blockSize: 20, etcd: ek}
	full := netConf{node: "a", dir: dir, name: "full", subnet: "10.95.0.0/24", blockSize: 30, etcd: ek}
	roomy.mustAdd(b, "warm")
	for i := 0; ; i++ { // fill full's first block
		if a := full.mustAdd(b, fmt.Sprintf("f%d", i)); a.As4()[3]%4 == 3 {
			break
		}
	}
	phase := func(name string) []time.Duration {
		var ds []time.Duration
		for i := 0; i < b.N; i++ {
			cid := fmt.Sprintf("%s-%d", name, i)
			start := time.Now()
			c := roomy.exec(b, "ADD", cid)
			ds = append(ds, time.Since(start))
			if c.out.Code != 0 {
				b.Fatalf("%s ADD %d: code %d %q", name, i, c.out.Code, c.out.Msg)
			}
			if d := roomy.exec(b, "DEL", cid); d.out.Code != 0 {
				b.Fatalf("%s DEL %d: code %d %q", name, i, d.out.Code, d.out.Msg)
			}
		}
		return ds
	}
	b.ResetTimer()
	healthy := phase("healthy")
	if err := srv.Blackhole(); err != nil {
		b.Fatal(err)
	}
	defer srv.Heal()
	before, err := srv.Dropped()
	if err != nil {
		b.Fatal(err)
	}
	var stop atomic.Bool
	var claims atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() { // keep a claim of the full network waiting on etcd
		for i := 0; !stop.Load(); i++ {
			full.exec(b, "ADD", fmt.Sprintf("claim-%d", i))
			claims.Add(1)
		}
	})
	// Measure once a claim is really waiting in the blackhole.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.WaitDropped(ctx, before); err != nil {
		b.Fatal(err)
	}
	blackholed := phase("blackholed")
	stop.Store(true)
	b.StopTimer()
	wg.Wait()
	h50, h99 := percentile(healthy, 50), percentile(healthy, 99)
	x50, x99 := percentile(blackholed, 50), percentile(blackholed, 99)
	b.ReportMetric(us(h50), "healthy-p50-us")
	b.ReportMetric(us(h99), "healthy-p99-us")
	b.ReportMetric(us(x50), "blackholed-p50-us")
	b.ReportMetric(us(x99), "blackholed-p99-us")
	b.ReportMetric(float64(x50)/float64(h50), "p50-ratio")
	b.ReportMetric(float64(x99)/float64(h99), "p99-ratio")
	b.ReportMetric(float64(claims.Load()), "hung-claims")
}
