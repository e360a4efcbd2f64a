package metrics_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/medianet/medianet/internal/cnitest"
)

// benchConf is medianet-ipam on network "bench" (cnitest.FillMedianet's).
func benchConf(dataDir string) []byte { return netConf("bench", dataDir) }

// netConf is medianet-ipam on network name, in FillMedianet's subnet.
func netConf(name, dataDir string) []byte {
	return fmt.Appendf(nil, `{"cniVersion":"1.0.0","name":%q,"type":"medianet-ipam","ipam":{"type":"medianet-ipam","subnet":"%s","node":"bench-node","dataDir":%q}}`,
		name, cnitest.FillSubnet, dataDir)
}

// execAddDel execs medianet-ipam ADD then DEL of cid and returns the time.
func execAddDel(b *testing.B, conf []byte, cid string) time.Duration {
	b.Helper()
	start := time.Now()
	for _, verb := range []string{"ADD", "DEL"} {
		c := cniCall{plugin: bin("medianet-ipam"), verb: verb, cid: cid, conf: conf}
		if got := c.run(b); got.Exit != 0 {
			b.Fatalf("%s %s: %v", verb, cid, got)
		}
	}
	return time.Since(start)
}

// BenchmarkAddReporting execs medianet-ipam ADD+DEL, 1,000 addresses
// allocated, alternating between a data directory whose node agent
// receives the reports and one without an agent (the report is refused
// at once), in the same run. Metrics: ns per ADD+DEL of each and their
// ratio. (metrics/report's BenchmarkSend gives Send's own cost.)
func BenchmarkAddReporting(b *testing.B) {
	with, without := b.TempDir(), b.TempDir()
	cnitest.FillMedianet(b, with, 1000)
	cnitest.FillMedianet(b, without, 1000)
	ag := startAgent(b, with, "--cni-conf-dir", b.TempDir(), "--node", "bench-node")
	var tWith, tWithout time.Duration
	n := 0
	for i := 0; b.Loop(); i++ {
		cid := fmt.Sprintf("bench-%d", i)
		tWith += execAddDel(b, benchConf(with), cid)
		tWithout += execAddDel(b, benchConf(without), cid)
		n++
	}
	b.ReportMetric(float64(tWith.Nanoseconds())/float64(n), "reported-ns/adddel")
	b.ReportMetric(float64(tWithout.Nanoseconds())/float64(n), "noagent-ns/adddel")
	b.ReportMetric(float64(tWith)/float64(tWithout), "reported/noagent")
	if got := ag.scrape(b); !containsLine(got, fmt.Sprintf(`medianet_operations_total{code="0",network="bench",node="bench-node",operation="ADD",plugin="medianet-ipam"} %d`, n)) {
		b.Errorf("the agent did not count %d ADDs:\n%s", n, got)
	}
}

// BenchmarkAddWhileScraping execs medianet-ipam ADD+DEL with 1,000
// addresses allocated, alternating between rounds while a client scrapes
// the node agent's /metrics back to back (each scrape reads the store;
// Prometheus scrapes every 15 s or so) and idle rounds, in the same run.
// The idle rounds use network "idle", the scraped ones "scraped", so the
// agent's own lock-wait histogram tells them apart. Metrics: ns per
// ADD+DEL of each, their ratio, the store lock wait per verb of each, and
// scrapes per second during the scraped rounds.
func BenchmarkAddWhileScraping(b *testing.B) {
	dataDir, confDir := b.TempDir(), b.TempDir()
	cnitest.FillMedianet(b, dataDir, 1000)
	if err := os.WriteFile(filepath.Join(confDir, "bench.conf"), benchConf(dataDir), 0o644); err != nil {
		b.Fatal(err)
	}
	ag := startAgent(b, dataDir, "--cni-conf-dir", confDir, "--node", "bench-node")
	var idle, busy time.Duration
	var scrapes atomic.Int64
	n := 0
	for i := 0; b.Loop(); i++ {
		idle += execAddDel(b, netConf("idle", dataDir), fmt.Sprintf("c-%d", i))
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Go(func() { scrapeLoop(ctx, ag.addr, &scrapes) })
		time.Sleep(5 * time.Millisecond) // let the loop start
		busy += execAddDel(b, netConf("scraped", dataDir), fmt.Sprintf("c-%d", i))
		cancel()
		wg.Wait()
		n++
	}
	b.ReportMetric(float64(idle.Nanoseconds())/float64(n), "idle-ns/adddel")
	b.ReportMetric(float64(busy.Nanoseconds())/float64(n), "scraped-ns/adddel")
	b.ReportMetric(float64(busy)/float64(idle), "scraped/idle")
	b.ReportMetric(float64(scrapes.Load())/busy.Seconds(), "scrapes/s")
	text := ag.scrape(b)
	for _, net := range []string{"idle", "scraped"} {
		sum := sample(b, text, fmt.Sprintf(`medianet_ipam_store_lock_wait_seconds_sum{network=%q,node="bench-node",plugin="medianet-ipam"}`, net))
		count := sample(b, text, fmt.Sprintf(`medianet_ipam_store_lock_wait_seconds_count{network=%q,node="bench-node",plugin="medianet-ipam"}`, net))
		b.ReportMetric(sum/count*1e6, net+"-lockwait-us/verb")
	}
	if !containsLine(text, `medianet_ipam_addresses_in_use{network="bench",node="bench-node",subnet="10.80.0.0/16"} 1000`) {
		b.Errorf("the agent does not show the 1000 allocations:\n%s", text)
	}
}

// sample returns the value of series (name and labels as exposed) in text.
func sample(b *testing.B, text, series string) float64 {
	b.Helper()
	for _, l := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				b.Fatalf("%s: %v", l, err)
			}
			return f
		}
	}
	b.Fatalf("no %s in the agent's metrics:\n%s", series, text)
	return 0
}

// scrapeLoop GETs /metrics back to back until ctx ends.
func scrapeLoop(ctx context.Context, addr string, n *atomic.Int64) {
	for ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			continue
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		n.Add(1)
	}
}

func containsLine(text, line string) bool {
	return slices.Contains(strings.Split(text, "\n"), line)
}
