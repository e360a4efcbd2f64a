package scale

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/medianet/medianet/internal/kubetest"
)

// Whereabouts (github.com/k8snetworkplumbingwg/whereabouts), the IPAM
// people pair with macvlan on Kubernetes, run as the CNI IPAM binary a
// runtime would exec, against the same kube-apiserver as the kubernetes
// source: MEDIANET_WHEREABOUTS names the binary, MEDIANET_WHEREABOUTS_CRDS
// the directory of its CRDs (doc/crds in its module).

// wbResult is what the Whereabouts run measured.
type wbResult struct {
	n            int
	adds, failed int
	wall         time.Duration
	add          []time.Duration
	requests     float64
	firstErr     string
	workers      int
}

// wbGroups are the API groups and core resources Whereabouts' ADD uses:
// its IPPools and OverlappingRangeIPReservations, its leader-election
// Lease, and pods.
var wbGroups, wbCore = []string{"whereabouts.cni.cncf.io", "coordination.k8s.io"}, []string{"pods"}

// runWhereabouts installs Whereabouts' CRDs in srv and runs p.adds ADDs
// through its binary, p.workers at a time (each a process, as a runtime
// runs it), bounded by MEDIANET_WHEREABOUTS_LIMIT (default 15 minutes)
// in all: an ADD still running then is cut short and counted failed.
func runWhereabouts(t *testing.T, p srcParams, srv *kubetest.Server, n int) wbResult {
	t.Helper()
	crds := os.Getenv("MEDIANET_WHEREABOUTS_CRDS")
	if crds == "" {
		t.Fatalf("MEDIANET_WHEREABOUTS is set: MEDIANET_WHEREABOUTS_CRDS must name the directory of its CRDs")
	}
	files, _ := filepath.Glob(filepath.Join(crds, "whereabouts.cni.cncf.io_*.yaml"))
	if len(files) == 0 {
		t.Fatalf("MEDIANET_WHEREABOUTS_CRDS %s: no whereabouts.cni.cncf.io_*.yaml", crds)
	}
	if err := srv.Install(files...); err != nil {
		t.Fatalf("install Whereabouts' CRDs: %v", err)
	}
	// Whereabouts reads a flat file beside the network's configuration (its
	// DaemonSet installs one); without any, every ADD fails.
	flat := filepath.Join(t.TempDir(), "whereabouts.conf")
	fc, _ := json.Marshal(map[string]any{"datastore": "kubernetes", "log_level": "error",
		"kubernetes": map[string]any{"kubeconfig": srv.AdminKubeconfig}})
	if err := os.WriteFile(flat, fc, 0o600); err != nil {
		t.Fatal(err)
	}
	conf, _ := json.Marshal(map[string]any{"cniVersion": "0.3.1", "name": "wb-media", "type": "macvlan",
		"ipam": map[string]any{"type": "whereabouts", "range": "10.80.0.0/16", "log_level": "error", "configuration_path": flat,
			"kubernetes": map[string]any{"kubeconfig": srv.AdminKubeconfig}}})
	ctx := context.Background()
	before, err := apiRequests(ctx, srv, wbGroups, wbCore)
	if err != nil {
		t.Fatal(err)
	}
	res := wbResult{n: n, workers: p.workers}
	var mu sync.Mutex
	limit := 15 * time.Minute
	if v := os.Getenv("MEDIANET_WHEREABOUTS_LIMIT"); v != "" {
		if limit, err = time.ParseDuration(v); err != nil || limit <= 0 {
			t.Fatalf("MEDIANET_WHEREABOUTS_LIMIT %q: want a positive duration such as 10m", v)
		}
	}
	deadline := time.Now().Add(limit)
	start := time.Now()
	_ = run(p.workers, p.adds, deadline, func(i int) error {
		t0 := time.Now()
		err := wbAdd(p.whereabouts, conf, i, deadline)
		took := time.Since(t0)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			res.failed++
			if res.firstErr == "" {
				res.firstErr = err.Error()
			}
			return nil // counted; the others go on
		}
		res.adds++
		res.add = append(res.add, took)
		return nil
	})
	res.wall = time.Since(start)
	after, err := apiRequests(ctx, srv, wbGroups, wbCore)
	if err != nil {
		t.Fatal(err)
	}
	res.requests = after - before
	t.Logf("whereabouts: %d ADDs, %d failed, %s, ADD %s, %.0f API requests; first error: %s",
		res.adds, res.failed, ms(res.wall), lat(res.add), res.requests, res.firstErr)
	if res.adds == 0 {
		t.Errorf("whereabouts: no ADD succeeded: %s", res.firstErr)
	}
	return res
}

// wbAdd runs one ADD of pod wb-<i> through the whereabouts binary.
func wbAdd(bin string, conf []byte, i int, deadline time.Time) error {
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	cid := fmt.Sprintf("wb-%d", i)
	cmd := exec.CommandContext(ctx, bin)
	cmd.Env = []string{"CNI_COMMAND=ADD", "CNI_CONTAINERID=" + cid, "CNI_IFNAME=eth0",
		"CNI_NETNS=/var/run/netns/medianet-scale-none", "CNI_PATH=/nonexistent", "PATH=/usr/bin:/bin",
		"CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=" + cid + ";K8S_POD_INFRA_CONTAINER_ID=" + cid}
	cmd.Stdin = bytes.NewReader(conf)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		// One line for the report: its CNI error JSON and its log.
		return fmt.Errorf("%w: %s", err, strings.Join(strings.Fields(out.String()+" "+errb.String()), " "))
	}
	var r struct {
		IPs []json.RawMessage `json:"ips"`
	}
	if json.Unmarshal(out.Bytes(), &r) != nil || len(r.IPs) != 1 {
		return fmt.Errorf("result is not one address: %s", out.Bytes())
	}
	return nil
}

// facts compares Whereabouts with the kubernetes source's churn of the
// same run and node count (the same number of ADDs, workers at a time).
func (w wbResult) facts(phases []srcPhase) []string {
	out := []string{fmt.Sprintf("- whereabouts: %d ADDs (%d failed) by %d workers in %s, ADD p50 / p99 / max %s; %.0f API requests "+
		"(whereabouts.cni.cncf.io, leases, pods), %s per 1,000 ADDs",
		w.adds, w.failed, w.workers, ms(w.wall), lat(w.add), w.requests, per1000(w.requests, w.adds))}
	if w.firstErr != "" {
		out = append(out, "- whereabouts, first failure: "+w.firstErr)
	}
	if w.adds == 0 {
		return out
	}
	theirs := w.requests / float64(w.adds)
	var all srcPhase // the kubernetes source's phases together
	for _, ph := range phases {
		if ph.n != w.n || ph.source != "kubernetes" {
			continue
		}
		all.requests += ph.requests
		all.sum.adds += ph.sum.adds
		if ph.name == "churn" && ph.sum.adds > 0 {
			out = append(out, fmt.Sprintf("- whereabouts vs medianet's churn (kubernetes source, same ADD count and workers): "+
				"%.2f vs %.3f API requests per ADD; ADD p50 %s vs %s (%.0f times); %s vs %s per ADD of wall time",
				theirs, ph.requests/float64(ph.sum.adds), ms(pct(w.add, 50)), ms(pct(ph.sum.add, 50)),
				float64(pct(w.add, 50))/float64(max(pct(ph.sum.add, 50), 1)),
				ms(w.wall/time.Duration(w.adds)), ms(ph.wall/time.Duration(ph.sum.adds))))
		}
	}
	if all.sum.adds > 0 && all.requests > 0 {
		ours := all.requests / float64(all.sum.adds)
		out = append(out, fmt.Sprintf("- whereabouts vs medianet's cold start, churn and sync together: %.2f vs %.3f API requests per ADD (%.0f times)",
			theirs, ours, theirs/ours))
	}
	return out
}
