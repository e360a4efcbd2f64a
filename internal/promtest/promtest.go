// Package promtest runs a real Prometheus server (Debian's prometheus,
// /usr/bin/prometheus, 2.42) for tests: on a loopback port it picks, with a
// scrape configuration pointing at the test's targets (plain HTTP, or jobs
// over TLS with basic auth), optional rule files, and a temporary TSDB;
// and it queries the server's HTTP API (instant queries, rules and
// alerts, series names). CheckRules runs promtool on a rule file.
//
// The server is stopped and its directory removed through t.Cleanup, also
// when the test fails.
package promtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Binaries the harness runs.
const (
	Binary   = "/usr/bin/prometheus"
	Promtool = "/usr/bin/promtool"
)

// SkipUnlessAvailable skips t unless prometheus and promtool are installed.
func SkipUnlessAvailable(t testing.TB) {
	t.Helper()
	for _, b := range []string{Binary, Promtool} {
		if _, err := os.Stat(b); err != nil {
			t.Skipf("promtest: %s missing: install Debian's prometheus package: %v", b, err)
		}
	}
}

// Options configure Start.
type Options struct {
	// Targets are host:port addresses scraped at /metrics (job "medianet").
	Targets []string
	// Jobs are further scrape jobs, such as targets served over TLS with
	// basic auth.
	Jobs []Job
	// RuleFiles are loaded as rule_files.
	RuleFiles []string
	// Interval is the scrape and rule evaluation interval (default 1s).
	Interval time.Duration
}

// Job is one scrape job of /metrics.
type Job struct {
	Name    string
	Targets []string // host:port
	// CAFile, when set, scrapes over https, verifying the target's
	// certificate with this CA; ServerName is the name verified.
	CAFile, ServerName string
	// Username and Password, when set, are sent as basic auth.
	Username, Password string
}

// yaml returns j as a scrape_configs entry (the strings quoted as JSON,
// which YAML reads).
func (j Job) yaml() string {
	q := strconv.Quote
	out := fmt.Sprintf("  - job_name: %s\n", q(j.Name))
	if j.CAFile != "" {
		out += fmt.Sprintf("    scheme: https\n    tls_config:\n      ca_file: %s\n", q(j.CAFile))
		if j.ServerName != "" {
			out += fmt.Sprintf("      server_name: %s\n", q(j.ServerName))
		}
	}
	if j.Username != "" {
		out += fmt.Sprintf("    basic_auth:\n      username: %s\n      password: %s\n", q(j.Username), q(j.Password))
	}
	out += "    static_configs:\n      - targets: ["
	for i, tg := range j.Targets {
		if i > 0 {
			out += ", "
		}
		out += q(tg)
	}
	return out + "]\n"
}

// Server is a running Prometheus.
type Server struct {
	URL string // http://127.0.0.1:PORT
	dir string
}

// Start runs Prometheus with opts and waits until it is ready.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	SkipUnlessAvailable(t)
	if opts.Interval <= 0 {
		opts.Interval = time.Second
	}
	dir := t.TempDir()
	cfg := fmt.Sprintf("global:\n  scrape_interval: %s\n  evaluation_interval: %s\n", opts.Interval, opts.Interval)
	if len(opts.RuleFiles) > 0 {
		cfg += "rule_files:\n"
		for _, f := range opts.RuleFiles {
			cfg += fmt.Sprintf("  - %q\n", f)
		}
	}
	cfg += "scrape_configs:\n"
	for _, j := range append([]Job{{Name: "medianet", Targets: opts.Targets}}, opts.Jobs...) {
		cfg += j.yaml()
	}
	conf := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(conf, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	port, err := freePort()
	if err != nil {
		t.Fatalf("promtest: free port: %v", err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	var logs bytes.Buffer
	cmd := exec.Command(Binary, "--config.file="+conf, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("promtest: start %s: %v", Binary, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	s := &Server{URL: "http://" + addr, dir: dir}
	if err := s.waitReady(done); err != nil {
		t.Fatalf("promtest: %v\n%s", err, logs.String())
	}
	return s
}

func (s *Server) waitReady(done <-chan struct{}) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return fmt.Errorf("prometheus exited before it was ready")
		default:
		}
		resp, err := http.Get(s.URL + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("prometheus at %s not ready after 30s", s.URL)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// get calls the API at path with query values and decodes its data.
func (s *Server) get(ctx context.Context, path string, q url.Values, data any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+path+"?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("promtest: %s: %w", path, err)
	}
	defer resp.Body.Close()
	var body struct {
		Status    string          `json:"status"`
		Error     string          `json:"error"`
		ErrorType string          `json:"errorType"`
		Data      json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return fmt.Errorf("promtest: %s: decode: %w", path, err)
	}
	if body.Status != "success" {
		return fmt.Errorf("promtest: %s %v: %s: %s", path, q, body.ErrorType, body.Error)
	}
	return json.Unmarshal(body.Data, data)
}

// Sample is one element of an instant vector.
type Sample struct {
	Metric map[string]string
	Value  float64
}

// Query runs an instant query and returns its vector (a scalar result is
// one sample without labels).
func (s *Server) Query(ctx context.Context, expr string) ([]Sample, error) {
	var data struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := s.get(ctx, "/api/v1/query", url.Values{"query": {expr}}, &data); err != nil {
		return nil, err
	}
	type point [2]any
	parse := func(p point) (float64, error) {
		str, _ := p[1].(string)
		return strconv.ParseFloat(str, 64)
	}
	if data.ResultType == "scalar" {
		var p point
		if err := json.Unmarshal(data.Result, &p); err != nil {
			return nil, err
		}
		v, err := parse(p)
		return []Sample{{Value: v}}, err
	}
	var vec []struct {
		Metric map[string]string `json:"metric"`
		Value  point             `json:"value"`
	}
	if err := json.Unmarshal(data.Result, &vec); err != nil {
		return nil, fmt.Errorf("promtest: query %q: result type %s: %w", expr, data.ResultType, err)
	}
	out := make([]Sample, len(vec))
	for i, e := range vec {
		v, err := parse(e.Value)
		if err != nil {
			return nil, fmt.Errorf("promtest: query %q: value %v: %w", expr, e.Value, err)
		}
		out[i] = Sample{Metric: e.Metric, Value: v}
	}
	return out, nil
}

// WaitFor runs expr until ok accepts its result, and fails t after
// timeout with the last result.
func (s *Server) WaitFor(t testing.TB, expr string, timeout time.Duration, ok func([]Sample) bool) []Sample {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		got, err := s.Query(ctx, expr)
		cancel()
		if err == nil && ok(got) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("promtest: %s after %s: %v, %v", expr, timeout, got, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// Value is a WaitFor condition: exactly one sample, equal to want.
func Value(want float64) func([]Sample) bool {
	return func(s []Sample) bool { return len(s) == 1 && s[0].Value == want }
}

// Rule is one rule as the rules API reports it.
type Rule struct {
	Name      string `json:"name"`
	Type      string `json:"type"` // alerting or recording
	Health    string `json:"health"`
	LastError string `json:"lastError"`
	State     string `json:"state"` // alerting rules: inactive, pending, firing
	Group     string `json:"-"`
}

// Rules returns every loaded rule.
func (s *Server) Rules(ctx context.Context) ([]Rule, error) {
	var data struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []Rule `json:"rules"`
		} `json:"groups"`
	}
	if err := s.get(ctx, "/api/v1/rules", url.Values{}, &data); err != nil {
		return nil, err
	}
	var out []Rule
	for _, g := range data.Groups {
		for _, r := range g.Rules {
			r.Group = g.Name
			out = append(out, r)
		}
	}
	return out, nil
}

// SeriesNames returns every metric name Prometheus has stored.
func (s *Server) SeriesNames(ctx context.Context) ([]string, error) {
	var names []string
	err := s.get(ctx, "/api/v1/label/__name__/values", url.Values{}, &names)
	return names, err
}

// CheckRules runs `promtool check rules` on file and returns its output
// with an error when promtool rejects it.
func CheckRules(file string) (string, error) {
	out, err := exec.Command(Promtool, "check", "rules", file).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("promtool check rules %s: %w: %s", file, err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}
