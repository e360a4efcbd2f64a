// Package scale simulates a cluster of nodes claiming IPAM blocks from a
// real three-member etcd cluster (Debian's etcd on loopback ports,
// internal/etcdtest) and measures it: cold start, steady churn, the etcd
// leader killed mid-churn, and dead nodes' blocks taken back with the real
// `medianetctl ipam reclaim`. Every node is an internal/etcdtest/simnode
// Node: its own name, data directory and bbolt store, the real allocator
// and etcd code path, one fresh etcd client per operation as a CNI
// process has; the nodes run in this one process. Every phase ends with
// the cluster-wide duplicate and overlap check.
//
// Without settings, TestScale runs a small cluster for a few seconds per
// phase (part of `make test`: it proves the phases and their checks, and
// asserts no timing). `make scale` sets the sizes and windows:
//
//	MEDIANET_SCALE_NODES   node counts, comma-separated (default 10)
//	MEDIANET_SCALE_CHURN   steady churn window (default 5s)
//	MEDIANET_SCALE_WORKERS concurrent operations in fill and churn (default 16)
//	MEDIANET_SCALE_ETCD    how nodes reach etcd: plain (http, the default),
//	                       password (TLS and a user's password: etcd checks
//	                       it with bcrypt on each new connection), or cert
//	                       (TLS, the client certificate names the user)
//	MEDIANET_SCALE_OUT     also write the report (markdown) to this file
package scale

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/medianet/medianet/internal/cnitest"
)

// bins holds medianetctl: $MEDIANET_BIN, or built by TestMain.
var bins string

func TestMain(m *testing.M) {
	os.Exit(cnitest.Main(m, &bins, "medianetctl"))
}

func bin(name string) string { return filepath.Join(bins, name) }

// params are the simulation's sizes, from the environment.
type params struct {
	nodes    []int
	churn    time.Duration
	workers  int
	out      string
	security string // plain, password or cert
	coldPods int    // pods each node starts at once in the cold start
	minPods  int    // steady churn keeps every node between minPods
	maxPods  int    // and maxPods pods
}

func loadParams(t *testing.T) params {
	t.Helper()
	p := params{nodes: []int{10}, churn: 5 * time.Second, workers: 16, coldPods: 3, minPods: 100, maxPods: 110,
		out: os.Getenv("MEDIANET_SCALE_OUT"), security: "plain"}
	if v := os.Getenv("MEDIANET_SCALE_ETCD"); v != "" {
		if v != "plain" && v != "password" && v != "cert" {
			t.Fatalf("MEDIANET_SCALE_ETCD %q: want plain, password or cert", v)
		}
		p.security = v
	}
	if v := os.Getenv("MEDIANET_SCALE_NODES"); v != "" {
		p.nodes = nil
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 10 {
				t.Fatalf("MEDIANET_SCALE_NODES %q: want node counts of at least 10, comma-separated", v)
			}
			p.nodes = append(p.nodes, n)
		}
	}
	if v := os.Getenv("MEDIANET_SCALE_CHURN"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("MEDIANET_SCALE_CHURN %q: want a positive duration such as 60s", v)
		}
		p.churn = d
	}
	if v := os.Getenv("MEDIANET_SCALE_WORKERS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("MEDIANET_SCALE_WORKERS %q: want a positive count", v)
		}
		p.workers = n
	}
	return p
}

func (p params) String() string {
	return fmt.Sprintf("etcd access %s; churn %s, %d workers, %d pods per node at cold start, %d-%d pods per node in churn",
		p.security, p.churn, p.workers, p.coldPods, p.minPods, p.maxPods)
}
