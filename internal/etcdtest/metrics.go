package etcdtest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Metrics is one scrape of a member's /metrics: the value of every
// series, keyed by the series as etcd prints it (`name{label="v",...}`,
// or just `name` without labels).
type Metrics map[string]float64

// Sum adds the values of the series named name whose labels include
// every `key="value"` pair given in labels.
func (m Metrics) Sum(name string, labels ...string) float64 {
	total := 0.0
	for series, v := range m {
		n, rest, _ := strings.Cut(series, "{")
		if n != name {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(rest, l)
		}
		if ok {
			total += v
		}
	}
	return total
}

// Metrics scrapes the server's Prometheus endpoint (/metrics on its
// client URL).
func (s *Server) Metrics(ctx context.Context) (Metrics, error) {
	tc, err := s.TLSConfig()
	if err != nil {
		return nil, err
	}
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}
	defer hc.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.clientURL+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("etcdtest: scrape %s: %w", s.name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("etcdtest: scrape %s: %s", s.name, resp.Status)
	}
	return parseMetrics(resp.Body)
}

// parseMetrics reads Prometheus' text format: comment lines are skipped,
// every other line is a series and its value (an optional timestamp
// after the value is ignored).
func parseMetrics(r io.Reader) (Metrics, error) {
	m := Metrics{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		// Label values may hold spaces; the value follows the closing brace.
		split := strings.LastIndexByte(line, '}') + 1
		if split == 0 {
			split = strings.IndexByte(line, ' ')
		}
		if split <= 0 {
			return nil, fmt.Errorf("etcdtest: metrics line %q: no value", line)
		}
		fields := strings.Fields(line[split:])
		if len(fields) == 0 {
			return nil, fmt.Errorf("etcdtest: metrics line %q: no value", line)
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return nil, fmt.Errorf("etcdtest: metrics line %q: %w", line, err)
		}
		m[strings.TrimSpace(line[:split])] = v
	}
	return m, sc.Err()
}
