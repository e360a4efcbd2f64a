package promtest

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestScrapeQueryRules: Prometheus scrapes a target, answers a query with
// its value, loads a rule file, and promtool rejects a broken one.
func TestScrapeQueryRules(t *testing.T) {
	SkipUnlessAvailable(t)
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "# TYPE promtest_probe gauge\npromtest_probe 42")
	}))
	defer target.Close()
	dir := t.TempDir()
	good, bad := filepath.Join(dir, "good.yaml"), filepath.Join(dir, "bad.yaml")
	for f, expr := range map[string]string{good: "promtest_probe > 40", bad: "promtest_probe >"} {
		rule := "groups:\n  - name: g\n    rules:\n      - alert: " + strings.TrimSuffix(filepath.Base(f), ".yaml") + "\n        expr: " + expr + "\n"
		if err := os.WriteFile(f, []byte(rule), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := CheckRules(good); err != nil {
		t.Fatalf("CheckRules(good): %v %s", err, out)
	}
	if _, err := CheckRules(bad); err == nil {
		t.Errorf("CheckRules accepted a rule with a broken expression")
	}
	s := Start(t, Options{Targets: []string{strings.TrimPrefix(target.URL, "http://")}, RuleFiles: []string{good}})
	s.WaitFor(t, "promtest_probe", 30*time.Second, Value(42))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := s.Query(ctx, "sum(("); err == nil {
		t.Errorf("Query accepted a broken expression")
	}
	names, err := s.SeriesNames(ctx)
	if err != nil || !strings.Contains(strings.Join(names, " "), "promtest_probe") {
		t.Errorf("SeriesNames = %v, %v; want promtest_probe among them", names, err)
	}
	rules, err := s.Rules(ctx)
	if err != nil || len(rules) != 1 || rules[0].Name != "good" || rules[0].Health == "err" {
		t.Errorf("Rules = %+v, %v; want the rule good loaded", rules, err)
	}
}
