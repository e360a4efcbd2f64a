// Package sim runs the deterministic simulator of internal/sim against a
// real etcd (TestSim) and against a real kube-apiserver (TestSimKube):
// fresh seeds for a bounded time in make test (about 60 s each,
// MEDIANET_SIM_DURATION), longer and with given seeds in make sim.
package sim

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/medianet/medianet/internal/etcdtest"
	"github.com/medianet/medianet/internal/kubetest"
	"github.com/medianet/medianet/internal/sim"
)

// Environment:
//   - MEDIANET_SIM_DURATION: how long to run fresh seeds (default 60s);
//   - MEDIANET_SIM_SEEDS: comma-separated seeds to run instead of fresh ones;
//   - MEDIANET_SIM_STEPS: steps per seed before the drain (default 300);
//   - MEDIANET_SIM_SHRINK: replays ddmin may spend on a failure (default
//     400; "none": list every failing seed without shrinking, and go on);
//   - MEDIANET_SIM_OUT: directory where failing replays are written;
//   - MEDIANET_SIM_BLOCKSIZE: one block size for every node and run
//     (default: each run picks its own, and changes it on the way);
//   - MEDIANET_SIM_REPLAY: a replay file to run instead;
//   - MEDIANET_SIM_FIRST: the first fresh seed (default: from the clock),
//     so that shards run side by side never share a seed;
//   - MEDIANET_SIM_MAX_STEPS: stop fresh seeds once this many steps ran.
func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func envInt(t *testing.T, name string, def int) int {
	v, err := strconv.Atoi(env(name, strconv.Itoa(def)))
	if err != nil || v <= 0 {
		t.Fatalf("%s=%q: want a positive number", name, os.Getenv(name))
	}
	return v
}

// runner starts etcd (or, with kube, a kube-apiserver on its own etcd)
// with its data on tmpfs when there is one (no fsync cost) and returns a
// runner whose stores live there too.
func runner(t *testing.T, kube bool) *sim.Runner {
	t.Helper()
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		t.Setenv("TMPDIR", "/dev/shm")
	}
	r := &sim.Runner{Dir: t.TempDir()}
	if kube {
		// Skips only when there is no kube-apiserver binary, saying why.
		srv := kubetest.Start(t)
		r.Kube = &sim.Kube{AgentKubeconfig: srv.AgentKubeconfig, AdminKubeconfig: srv.AdminKubeconfig}
	} else {
		r.Endpoints = etcdtest.Start(t, etcdtest.Options{}).Endpoints()
	}
	if v := os.Getenv("MEDIANET_SIM_BLOCKSIZE"); v != "" {
		bs, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("MEDIANET_SIM_BLOCKSIZE=%q: %v", v, err)
		}
		r.BlockSize = bs
	}
	if err := r.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// TestSim runs the simulator's etcd world.
func TestSim(t *testing.T) { simulate(t, runner(t, false)) }

// TestSimKube runs its Kubernetes API world: the nodes claim blocks as
// IPAMBlocks (kubestore) in a real kube-apiserver.
func TestSimKube(t *testing.T) { simulate(t, runner(t, true)) }

func simulate(t *testing.T, r *sim.Runner) {
	if path := os.Getenv("MEDIANET_SIM_REPLAY"); path != "" {
		replay(t, r, path)
		return
	}
	steps := envInt(t, "MEDIANET_SIM_STEPS", 300)
	survey := os.Getenv("MEDIANET_SIM_SHRINK") == "none"
	budget := 0
	if !survey {
		budget = envInt(t, "MEDIANET_SIM_SHRINK", 400)
	}
	dur, err := time.ParseDuration(env("MEDIANET_SIM_DURATION", "60s"))
	if err != nil {
		t.Fatalf("MEDIANET_SIM_DURATION: %v", err)
	}
	var seeds []int64
	for _, f := range strings.Split(os.Getenv("MEDIANET_SIM_SEEDS"), ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		s, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			t.Fatalf("MEDIANET_SIM_SEEDS: %q: %v", f, err)
		}
		seeds = append(seeds, s)
	}
	fresh := len(seeds) == 0
	next := time.Now().UnixNano() % 1_000_000_000
	if v := os.Getenv("MEDIANET_SIM_FIRST"); v != "" {
		if next, err = strconv.ParseInt(v, 10, 64); err != nil {
			t.Fatalf("MEDIANET_SIM_FIRST=%q: %v", v, err)
		}
	}
	maxSteps := int64(0)
	if os.Getenv("MEDIANET_SIM_MAX_STEPS") != "" {
		maxSteps = int64(envInt(t, "MEDIANET_SIM_MAX_STEPS", 1))
	}
	start := time.Now()
	var total, runs atomic.Int64
	lastLog := start
	for i := 0; ; i++ {
		var seed int64
		if fresh {
			if time.Since(start) > dur || (maxSteps > 0 && total.Load() >= maxSteps) {
				break
			}
			seed = next + int64(i)
		} else if i < len(seeds) {
			seed = seeds[i]
		} else {
			break
		}
		res, err := r.Run(seed, steps)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		total.Add(int64(res.Steps))
		runs.Add(1)
		if time.Since(lastLog) > time.Minute {
			lastLog = time.Now()
			t.Logf("sim: %d runs, %d steps so far (%.0f steps/s)", runs.Load(), total.Load(), float64(total.Load())/time.Since(start).Seconds())
		}
		if res.Violation == nil {
			continue
		}
		if survey {
			t.Errorf("seed %d: %v", seed, res.Violation)
			continue
		}
		var b strings.Builder
		short, err := r.Report(&b, res, budget)
		t.Log(b.String())
		if dir := os.Getenv("MEDIANET_SIM_OUT"); dir != "" && err == nil {
			path := filepath.Join(dir, fmt.Sprintf("seed-%d-%s.steps", seed, res.Violation.Kind))
			if err := sim.WriteReplayFile(path, res.Violation.Error(), short); err == nil {
				t.Logf("replay written to %s", path)
			}
		}
		t.Errorf("seed %d: %v (after %d runs, %d steps in all)", seed, res.Violation, runs.Load(), total.Load())
		if fresh {
			break
		}
	}
	el := time.Since(start)
	t.Logf("sim: %d runs, %d steps in %s: %.0f steps/s", runs.Load(), total.Load(), el.Round(time.Millisecond), float64(total.Load())/el.Seconds())
}

// replay runs the replay file at path, which must pass.
func replay(t *testing.T, r *sim.Runner, path string) {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	rp, err := sim.ReadReplay(f)
	f.Close()
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if testing.Verbose() {
		r.Trace = os.Stderr
	}
	v, err := r.Replay(rp)
	if err != nil {
		t.Fatal(err)
	}
	if v == nil {
		return
	}
	t.Errorf("%s (seed %d, %d steps): %v", path, rp.Seed, len(rp.Steps), v)
	if n, err := strconv.Atoi(os.Getenv("MEDIANET_SIM_SHRINK")); err == nil && n > 0 {
		r.Trace = nil
		short, tries, err := r.Shrink(rp, v.Kind, n)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("shrunk from %d to %d steps in %d replays:\n%s", len(rp.Steps), len(short.Steps), tries, short)
	}
}
