package ipam_test

import (
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/medianet/medianet/internal/cnitest"
)

// burstSize is how many ADDs start at once, as on a node where a
// deployment scales up or many pods are rescheduled.
const burstSize = 100

// burstNet is one network of a burst: the plugin, its configuration.
type burstNet struct {
	plug string
	conf []byte
}

// burstNets returns medianet-ipam's and host-local's configurations of
// nets networks on one node, in dataDir: medianet's networks share one
// store (one lock), host-local's have a directory (and lock) each.
func burstNets(nets int, mnDir, hlDir string) (mn, hl []burstNet) {
	for i := range nets {
		subnet := fmt.Sprintf("10.%d.0.0/16", 90+i)
		mn = append(mn, burstNet{bin("medianet-ipam"), fmt.Appendf(nil,
			`{"cniVersion":"1.0.0","name":"burst%d","type":"medianet-ipam","ipam":{"type":"medianet-ipam","subnet":%q,"node":"bench-node","dataDir":%q}}`,
			i, subnet, mnDir)})
		hl = append(hl, burstNet{hostLocal, fmt.Appendf(nil,
			`{"cniVersion":"1.0.0","name":"burst%d","type":"host-local","ipam":{"type":"host-local","ranges":[[{"subnet":%q}]],"dataDir":%q}}`,
			i, subnet, hlDir)})
	}
	return mn, hl
}

// burst execs one verb for burstSize containers at once, spread evenly
// over nets, and returns each process's time from exec to exit. wrap,
// when set, gives the program to exec in the plugin's place.
func burst(b *testing.B, nets []burstNet, verb, tag string, wrap func(plug string) (string, error)) []time.Duration {
	b.Helper()
	took := make([]time.Duration, burstSize)
	errs := make([]error, burstSize)
	gate := make(chan struct{})
	var wg sync.WaitGroup
	for j := range burstSize {
		n := nets[j%len(nets)]
		wg.Go(func() {
			plug, err := n.plug, error(nil)
			if wrap != nil {
				plug, err = wrap(n.plug)
			}
			<-gate
			start := time.Now()
			var c cnitest.Call
			if err == nil {
				c, err = plugin(plug, verb, fmt.Sprintf("%s-%d", tag, j), "eth0", n.conf)
			}
			took[j] = time.Since(start)
			if err == nil && c.Exit != 0 {
				err = fmt.Errorf("exit %d: %s %s", c.Exit, c.Stdout, c.Stderr)
			}
			errs[j] = err
		})
	}
	close(gate)
	wg.Wait()
	for j, err := range errs {
		if err != nil {
			b.Fatalf("%s %s-%d: %v", verb, tag, j, err)
		}
	}
	return took
}

// BenchmarkBurst100 starts 100 IPAM ADDs at once on one node, then 100
// DELs, for medianet-ipam and the reference host-local in turn, with one
// network and with five networks (medianet's five share one store and its
// lock; host-local's have a lock each). Metrics: ADD p50 and p99 of each
// (in ms), the p99 ratio medianet/host-local (target <= 0.5), and, from
// one more burst of each traced with strace (flock calls only), the worst
// and median total time a process waited for its store lock.
//
//	go test -run '^$' -bench Burst100 -benchtime 10x ./test/ipam
func BenchmarkBurst100(b *testing.B) {
	if _, err := os.Stat(hostLocal); err != nil {
		b.Skipf("reference plugin %s missing (Debian containernetworking-plugins): %v", hostLocal, err)
	}
	for _, nets := range []int{1, 5} {
		b.Run(fmt.Sprintf("networks=%d", nets), func(b *testing.B) {
			mn, hl := burstNets(nets, b.TempDir(), b.TempDir())
			var mnAdd, hlAdd, mnDel, hlDel []time.Duration
			for i := 0; b.Loop(); i++ {
				tag := fmt.Sprintf("b%d", i)
				mnAdd = append(mnAdd, burst(b, mn, "ADD", tag, nil)...)
				hlAdd = append(hlAdd, burst(b, hl, "ADD", tag, nil)...)
				mnDel = append(mnDel, burst(b, mn, "DEL", tag, nil)...)
				hlDel = append(hlDel, burst(b, hl, "DEL", tag, nil)...)
			}
			b.StopTimer()
			for _, m := range []struct {
				name string
				ds   []time.Duration
			}{{"medianet-add", mnAdd}, {"hostlocal-add", hlAdd}, {"medianet-del", mnDel}, {"hostlocal-del", hlDel}} {
				b.ReportMetric(msOf(pctl(m.ds, 50)), m.name+"-p50-ms")
				b.ReportMetric(msOf(pctl(m.ds, 99)), m.name+"-p99-ms")
			}
			b.ReportMetric(float64(pctl(mnAdd, 99))/float64(pctl(hlAdd, 99)), "p99-medianet/hostlocal")
			reportLockWait(b, mn, hl)
		})
	}
}

// reportLockWait runs one more ADD burst and DEL burst of each plugin
// under strace and reports the worst and median lock wait of the ADDs.
func reportLockWait(b *testing.B, mn, hl []burstNet) {
	b.Helper()
	tr, err := newFlockTracer(b.TempDir())
	if err != nil {
		b.Logf("lock wait not measured: %v", err)
		return
	}
	for _, who := range []struct {
		name string
		nets []burstNet
		lock string
	}{{"medianet", mn, "ipam.lock"}, {"hostlocal", hl, "lock"}} {
		burst(b, who.nets, "ADD", "trace", tr.wrap)
		waits, err := tr.waits(who.lock)
		if err != nil {
			b.Fatal(err)
		}
		burst(b, who.nets, "DEL", "trace", nil)
		b.ReportMetric(msOf(maxDur(waits)), who.name+"-lockwait-max-ms")
		b.ReportMetric(msOf(pctl(waits, 50)), who.name+"-lockwait-p50-ms")
	}
}

func msOf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func maxDur(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	return slices.Max(ds)
}

// pctl returns the p-th percentile of ds.
func pctl(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*p/100)]
}
