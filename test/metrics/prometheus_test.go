package metrics_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/medianet/medianet/internal/nstest"
	"github.com/medianet/medianet/internal/promtest"
	"github.com/medianet/medianet/metrics"
)

// mediaConflist is a two-node network: node-a's range 10.93.0.0/28 holds
// 15 usable addresses (the network address is reserved, the gateway lies
// outside), in one block.
func mediaConflist(master, dataDir string) []byte {
	return fmt.Appendf(nil, `{"cniVersion":"1.1.0","name":"media","plugins":[
		{"type":"medianet","master":%q,"skipDAD":true,"ipam":{"type":"medianet-ipam",
		 "subnet":"10.93.0.0/24","gateway":"10.93.0.254","blockSize":28,"dataDir":%q,
		 "nodeRanges":{"node-a":["10.93.0.0/28"],"node-b":["10.93.0.16/28"]}}}]}`, master, dataDir)
}

// mediaConf is the conflist's plugin entry as a runtime passes it.
func mediaConf(t testing.TB, conflist []byte) []byte {
	t.Helper()
	var l struct {
		CNIVersion string           `json:"cniVersion"`
		Name       string           `json:"name"`
		Plugins    []map[string]any `json:"plugins"`
	}
	if err := json.Unmarshal(conflist, &l); err != nil {
		t.Fatal(err)
	}
	p := l.Plugins[0]
	p["cniVersion"], p["name"] = l.CNIVersion, l.Name
	b, _ := json.Marshal(p)
	return b
}

// TestCNIMetricsInPrometheus drives the medianet plugin on a namespace
// LAN with the node agent and a real Prometheus scraping it, and checks
// the series' values, the alert rules of docs/operations.md (the range
// alert turns pending at 14 of 15 addresses) and that every series the
// docs list is served.
func TestCNIMetricsInPrometheus(t *testing.T) {
	nstest.SkipUnlessRoot(t)
	promtest.SkipUnlessAvailable(t)
	lan := nstest.NewLAN(t, "mnm")
	dataDir, confDir := t.TempDir(), t.TempDir()
	conflist := mediaConflist(lan.Master, dataDir)
	if err := os.WriteFile(filepath.Join(confDir, "10-media.conflist"), conflist, 0o644); err != nil {
		t.Fatal(err)
	}
	ag := startAgent(t, dataDir, "--cni-conf-dir", confDir, "--node", "node-a")
	rules := docRules(t)
	if out, err := promtest.CheckRules(rules); err != nil {
		t.Fatalf("docs/operations.md rules: %v\n%s", err, out)
	}
	prom := promtest.Start(t, promtest.Options{Targets: []string{ag.addr}, RuleFiles: []string{rules}})

	const adds = 14
	base := cniCall{plugin: bin("medianet"), host: lan.Host.Path, conf: mediaConf(t, conflist), env: []string{"MEDIANET_NODE=node-a"}}
	ctrs := make([]string, adds+1)
	for i := range ctrs {
		ctrs[i] = nstest.NewNS(t, "mnmc").Path
	}
	runAll(t, base, "ADD", ctrs[:adds])
	bad := base
	bad.verb, bad.cid, bad.netns, bad.args = "ADD", "ctr-bad", ctrs[adds], "IP=10.93.0.20" // node-b's
	if got := bad.run(t); got.Exit == 0 || got.Err().Code != 7 {
		t.Fatalf("ADD of node-b's address: %v, want CNI error 7", got)
	}

	wait(t, "reports from the plugin", 10*time.Second, func() (bool, string) {
		text := ag.scrape(t)
		return containsLine(text, fmt.Sprintf(`medianet_metrics_reports_total{node="node-a",result="ok"} %d`, adds+1)),
			"the agent received no report: the cni package must call report.Send at the end of each verb (see metrics/report)"
	})
	sel := `{network="media",node="node-a",subnet="10.93.0.0/24"}`
	for expr, want := range map[string]float64{
		"medianet_ipam_addresses_in_use" + sel:                                                         adds,
		"medianet_ipam_range_addresses" + sel:                                                          15,
		"medianet_ipam_range_addresses_free" + sel:                                                     15 - adds,
		"medianet_ipam_block_addresses_free" + sel:                                                     15 - adds,
		"medianet_ipam_blocks" + sel:                                                                   1,
		"medianet_ipam_blocks_lost" + sel:                                                              0,
		`medianet_operations_total{network="media",plugin="medianet",operation="ADD",code="0"}`:        adds,
		`medianet_operations_total{network="media",plugin="medianet",operation="ADD",code="7"}`:        1,
		`medianet_operation_duration_seconds_count{network="media",plugin="medianet",operation="ADD"}`: adds + 1,
		`medianet_ipam_store_lock_wait_seconds_count{network="media",plugin="medianet"}`:               adds + 1,
		`medianet_metrics_reports_total{result="ok"}`:                                                  adds + 1,
		`medianet_ipam_store_scrape_success{node="node-a"}`:                                            1,
	} {
		prom.WaitFor(t, expr, 30*time.Second, promtest.Value(want))
	}
	checkOnlyAlert(t, prom, "MedianetRangeNearlyFull")
	checkSeriesServed(t, prom)

	runAll(t, base, "DEL", ctrs[:3])
	prom.WaitFor(t, "medianet_ipam_addresses_in_use"+sel, 30*time.Second, promtest.Value(adds-3))
	prom.WaitFor(t, "medianet_ipam_range_addresses_free"+sel, 30*time.Second, promtest.Value(15-adds+3))
	prom.WaitFor(t, `medianet_operations_total{network="media",plugin="medianet",operation="DEL",code="0"}`, 30*time.Second, promtest.Value(3))
	prom.WaitFor(t, `histogram_quantile(1, sum by (le) (medianet_operation_duration_seconds_bucket{operation="ADD"})) > 0`,
		10*time.Second, func(s []promtest.Sample) bool { return len(s) == 1 })
}

// checkOnlyAlert waits until alert is pending or firing, and checks that
// every rule is healthy and every other alert inactive.
func checkOnlyAlert(t *testing.T, prom *promtest.Server, alert string) {
	t.Helper()
	wait(t, alert+" pending or firing", 30*time.Second, func() (bool, string) {
		rs := rules_(t, prom)
		return alertState(rs, alert) != "inactive", fmt.Sprint(rs)
	})
	for _, r := range rules_(t, prom) {
		if r.Health != "ok" {
			t.Errorf("rule %s: health %q: %s", r.Name, r.Health, r.LastError)
		}
		if r.Name != alert && r.State != "inactive" {
			t.Errorf("alert %s is %s, want inactive", r.Name, r.State)
		}
	}
}

// runAll runs verb for containers "ctr-<i>" in namespaces ctrs, each of
// which must succeed.
func runAll(t *testing.T, base cniCall, verb string, ctrs []string) {
	t.Helper()
	for i, ns := range ctrs {
		c := base
		c.verb, c.cid, c.netns = verb, fmt.Sprintf("ctr-%d", i), ns
		if got := c.run(t); got.Exit != 0 {
			t.Fatalf("%s %s: %v", verb, c.cid, got)
		}
	}
}

func rules_(t *testing.T, prom *promtest.Server) []promtest.Rule {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rs, err := prom.Rules(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) < 4 {
		t.Fatalf("Prometheus loaded %d rules from docs/operations.md, want at least 4: %+v", len(rs), rs)
	}
	return rs
}

func alertState(rs []promtest.Rule, name string) string {
	for _, r := range rs {
		if r.Name == name {
			return r.State
		}
	}
	return "missing"
}

// checkSeriesServed checks that Prometheus stored every series the
// metrics package names (histograms as _bucket).
func checkSeriesServed(t *testing.T, prom *promtest.Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	names, err := prom.SeriesNames(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range metrics.Series {
		if !slices.Contains(names, s) && !slices.Contains(names, s+"_bucket") {
			t.Errorf("series %s not in Prometheus (has %v)", s, names)
		}
	}
}

var seriesRE = regexp.MustCompile(`\bmedianet_[a-z0-9_]+`)

// TestDocsNameServedSeries: every medianet_ series named in
// docs/operations.md (the table and the rules) and in the Grafana
// dashboard is one the metrics package serves.
func TestDocsNameServedSeries(t *testing.T) {
	known := map[string]bool{}
	for _, s := range metrics.Series {
		known[s] = true
		for _, suf := range []string{"_bucket", "_count", "_sum"} {
			known[s+suf] = true
		}
	}
	for _, f := range []string{"docs/operations.md", "docs/grafana-dashboard.json"} {
		b, err := os.ReadFile(repoFile(t, f))
		if err != nil {
			t.Fatal(err)
		}
		found := seriesRE.FindAllString(string(b), -1)
		if len(found) < 10 {
			t.Errorf("%s names only %d medianet series; extraction broken?", f, len(found))
		}
		for _, s := range found {
			if !known[s] {
				t.Errorf("%s names %s, which medianet does not serve", f, s)
			}
		}
	}
	doc, _ := os.ReadFile(repoFile(t, "docs/operations.md"))
	for _, s := range metrics.Series {
		if !strings.Contains(string(doc), "`"+s+"`") {
			t.Errorf("docs/operations.md does not list %s", s)
		}
	}
}

// dashboardExprs returns every query of docs/grafana-dashboard.json (and
// of its variables) with Grafana's variables replaced by values
// Prometheus accepts.
func dashboardExprs(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(repoFile(t, "docs/grafana-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name       string `json:"name"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("docs/grafana-dashboard.json is not valid JSON: %v", err)
	}
	r := strings.NewReplacer("$network", ".*", "$node", ".*", "$__rate_interval", "1m")
	var out []string
	for _, p := range d.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			out = append(out, r.Replace(tg.Expr))
		}
	}
	for _, v := range d.Templating.List {
		if m := regexp.MustCompile(`^label_values\((\w+), (\w+)\)$`).FindStringSubmatch(v.Definition); m != nil {
			out = append(out, fmt.Sprintf("count by (%s) (%s)", m[2], m[1]))
		}
	}
	return out
}

// TestDashboardQueries runs every query of the Grafana dashboard against a
// real Prometheus scraping a node agent: each must parse and evaluate.
func TestDashboardQueries(t *testing.T) {
	promtest.SkipUnlessAvailable(t)
	dataDir := t.TempDir()
	ag := startAgent(t, dataDir, "--cni-conf-dir", t.TempDir(), "--node", "node-a")
	prom := promtest.Start(t, promtest.Options{Targets: []string{ag.addr}})
	prom.WaitFor(t, `medianet_ipam_store_scrape_success`, 30*time.Second, promtest.Value(1))
	exprs := dashboardExprs(t)
	if len(exprs) < 10 {
		t.Fatalf("dashboard has %d queries, want at least 10", len(exprs))
	}
	for _, e := range exprs {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if _, err := prom.Query(ctx, e); err != nil {
			t.Errorf("dashboard query %q: %v", e, err)
		}
		cancel()
	}
}
