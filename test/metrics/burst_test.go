package metrics_test

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/medianet/medianet/internal/promtest"
	"github.com/medianet/medianet/metrics/report"
)

// burstPlugins is how many plugins run while the agent is stopped.
const burstPlugins = 1000

// TestReportBurstWhileAgentStopped: the node agent is stopped (SIGSTOP,
// as when it is descheduled) while 1,000 exec'd medianet-ipam DELs
// report; once it runs again, every report is counted: received, or
// counted as lost by the plugins. None may vanish.
func TestReportBurstWhileAgentStopped(t *testing.T) {
	if testing.Short() {
		t.Skip("execs 1,000 plugins")
	}
	dataDir, confDir := t.TempDir(), t.TempDir()
	conf := netConf("burst", dataDir)
	if err := os.WriteFile(filepath.Join(confDir, "burst.conf"), conf, 0o644); err != nil {
		t.Fatal(err)
	}
	ag := startAgent(t, dataDir, "--cni-conf-dir", confDir, "--node", "bench-node")
	if err := syscall.Kill(ag.pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	resumed := false
	defer func() {
		if !resumed {
			_ = syscall.Kill(ag.pid, syscall.SIGCONT)
		}
	}()
	var wg sync.WaitGroup
	jobs := make(chan int)
	var mu sync.Mutex
	var failed []string
	for range 16 {
		wg.Go(func() {
			for i := range jobs {
				c := cniCall{plugin: bin("medianet-ipam"), verb: "DEL", cid: fmt.Sprintf("burst-%d", i), conf: conf}
				if got := c.run(t); got.Exit != 0 {
					mu.Lock()
					failed = append(failed, got.String())
					mu.Unlock()
				}
			}
		})
	}
	for i := range burstPlugins {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	// The agent stays stopped at least a second, however fast the burst.
	for time.Since(stopped) < time.Second {
		time.Sleep(time.Second - time.Since(stopped))
	}
	if len(failed) > 0 {
		t.Fatalf("%d DELs failed, first: %s", len(failed), failed[0])
	}
	burst := time.Since(stopped)
	if err := syscall.Kill(ag.pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	resumed = true
	var ok, lost float64
	wait(t, "every report received or counted lost", 30*time.Second, func() (bool, string) {
		text := ag.scrape(t)
		ok = sampleValue(text, `medianet_metrics_reports_total{node="bench-node",result="ok"}`)
		lost = sampleValue(text, `medianet_metrics_reports_refused_total{node="bench-node",reason="queue_full"}`)
		return ok+lost == burstPlugins, fmt.Sprintf("%v received, %v counted lost, of %d", ok, lost, burstPlugins)
	})
	t.Logf("agent stopped %s: %v of %d reports received, %v counted lost", burst.Round(time.Millisecond), ok, burstPlugins, lost)
	if lost != 0 {
		t.Errorf("%v of %d reports lost (counted): the queue must hold a burst of %d", lost, burstPlugins, burstPlugins)
	}
}

// sampleValue returns the value of the sample line starting with series
// (name and labels exactly) in a /metrics text, 0 when absent.
func sampleValue(text, series string) float64 {
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(text)
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

// TestRefusedReportAlert: one report no plugin can send (a duration of
// 2^63 ns) is refused, counted, and fires the docs' MedianetReportsRefused
// alert in a real Prometheus; the operation series never see it.
func TestRefusedReportAlert(t *testing.T) {
	dataDir := t.TempDir()
	ag := startAgent(t, dataDir, "--cni-conf-dir", t.TempDir(), "--node", "node-a")
	prom := promtest.Start(t, promtest.Options{Targets: []string{ag.addr}, RuleFiles: []string{docRules(t)}})
	prom.WaitFor(t, `medianet_metrics_reports_refused_total{reason="bounds"}`, 30*time.Second, promtest.Value(0))
	c, err := net.Dial("unix", report.SocketPath(dataDir))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Write([]byte(`{"v":1,"plugin":"medianet","verb":"ADD","network":"media","code":0,"dur":9223372036854775807}`))
	c.Close()
	if err != nil {
		t.Fatal(err)
	}
	prom.WaitFor(t, `medianet_metrics_reports_refused_total{reason="bounds"}`, 30*time.Second, promtest.Value(1))
	wait(t, "MedianetReportsRefused firing", 30*time.Second, func() (bool, string) {
		rs := rules_(t, prom)
		return alertState(rs, "MedianetReportsRefused") == "firing", fmt.Sprint(rs)
	})
	if got := sampleValue(ag.scrape(t), `medianet_operation_duration_seconds_count{network="",node="node-a",operation="ADD",plugin="medianet"}`); got != 0 {
		t.Errorf("the refused report was recorded: %v ADDs", got)
	}
}
