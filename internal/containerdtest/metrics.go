package containerdtest

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
)

// Timer is the running total of one of containerd's duration metrics.
type Timer struct {
	Sum   float64 // seconds
	Count float64
}

// Sub returns t minus earlier: what happened in between.
func (t Timer) Sub(earlier Timer) Timer {
	return Timer{Sum: t.Sum - earlier.Sum, Count: t.Count - earlier.Count}
}

// Mean is the mean duration in seconds (0 without observations).
func (t Timer) Mean() float64 {
	if t.Count == 0 {
		return 0
	}
	return t.Sum / t.Count
}

// Timer reads a duration metric (a Prometheus histogram or summary, all
// label sets added up) from containerd's metrics endpoint, such as the
// CRI plugin's "containerd_cri_sandbox_create_network_seconds" (the CNI
// ADD of RunPodSandbox) or "containerd_cri_sandbox_run_seconds".
func (c *Containerd) Timer(name string) (Timer, error) {
	resp, err := http.Get("http://" + c.Metrics + "/v1/metrics")
	if err != nil {
		return Timer{}, fmt.Errorf("containerd metrics: %w", err)
	}
	defer resp.Body.Close()
	var t Timer
	found := false
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		metric, _, _ := strings.Cut(f[0], "{")
		v, err := strconv.ParseFloat(f[1], 64)
		switch {
		case err != nil:
		case metric == name+"_sum":
			t.Sum += v
			found = true
		case metric == name+"_count":
			t.Count += v
		}
	}
	if err := sc.Err(); err != nil {
		return Timer{}, fmt.Errorf("containerd metrics: %w", err)
	}
	if !found {
		return Timer{}, fmt.Errorf("containerd metrics: no %s", name)
	}
	return t, nil
}

// freePort returns a loopback host:port free at the time of the call.
func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}
