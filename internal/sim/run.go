package sim

import (
	"fmt"
	"io"
	"os"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"k8s.io/client-go/dynamic"
)

// Runner runs simulations against one etcd server, or one Kubernetes API
// server.
type Runner struct {
	// Endpoints of the etcd server; Dir holds the runs' stores (tmpfs is
	// best); Nodes per run (default DefaultNodes).
	Endpoints []string
	Dir       string
	Nodes     int
	// Kube, when set, runs every world against this Kubernetes API
	// server (kubestore) instead of etcd; Endpoints is then unused.
	Kube *Kube
	// BlockSize, when set, is every node's block size for the whole run
	// (no blockSize change): to hunt the races of one size alone.
	BlockSize int
	// Trace, when set, gets a line per replayed step: the step and where
	// the operation it moved is parked now.
	Trace io.Writer

	raw   *clientv3.Client
	admin dynamic.Interface
}

// Open connects the runner's own (unhooked) client of etcd or of the
// API server.
func (r *Runner) Open() error {
	if r.Nodes <= 0 {
		r.Nodes = DefaultNodes
	}
	if r.Kube != nil {
		admin, err := r.Kube.adminClient()
		if err != nil {
			return err
		}
		r.admin = admin
		return nil
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: r.Endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return fmt.Errorf("sim: connect etcd at %v: %w", r.Endpoints, err)
	}
	r.raw = cli
	return nil
}

// Close closes the runner's etcd client.
func (r *Runner) Close() error {
	if r.raw == nil {
		return nil
	}
	return r.raw.Close()
}

// source is the Replay.Source of the runner's worlds.
func (r *Runner) source() string {
	if r.Kube != nil {
		return "kube"
	}
	return ""
}

// Result is one run's outcome.
type Result struct {
	Replay    Replay
	Violation *Violation
	Steps     int // steps applied (the drain counts as one)
}

// Run generates and applies up to steps steps from seed, checking the
// invariants after each, then drains. It stops at the first violation.
func (r *Runner) Run(seed int64, steps int) (Result, error) {
	w, err := r.newWorld(r.Nodes)
	if err != nil {
		return Result{}, err
	}
	defer w.close()
	g := newGen(seed)
	g.blockSize, g.caps = r.BlockSize, w.be.caps()
	res := Result{Replay: Replay{Seed: seed, Nodes: r.Nodes, Source: r.source()}}
	do := func(s Step) bool {
		res.Replay.Steps = append(res.Replay.Steps, s)
		w.apply(s)
		w.checkInvariants()
		return w.violation == nil
	}
	ok := do(g.first())
	for i := 0; ok && i < steps; i++ {
		ok = do(g.next(w))
	}
	if ok {
		do(Step{Kind: "drain"})
	}
	res.Violation, res.Steps = w.violation, w.steps
	return res, nil
}

// Replay applies rp's steps (no drain is added) and returns the first
// violation, if any.
func (r *Runner) Replay(rp Replay) (*Violation, error) {
	v, _, err := r.replay(rp)
	return v, err
}

// replay is Replay also returning which steps did nothing.
func (r *Runner) replay(rp Replay) (*Violation, []bool, error) {
	nodes := rp.Nodes
	if nodes <= 0 {
		nodes = r.Nodes
	}
	if rp.Source != r.source() {
		return nil, nil, fmt.Errorf("sim: replay of seed %d is for source %q, this runner's is %q", rp.Seed, rp.Source, r.source())
	}
	w, err := r.newWorld(nodes)
	if err != nil {
		return nil, nil, err
	}
	defer w.close()
	for _, s := range rp.Steps {
		w.apply(s)
		w.checkInvariants()
		if r.Trace != nil {
			w.trace(r.Trace, s)
		}
		if w.violation != nil {
			break
		}
	}
	return w.violation, w.noop, nil
}

// Report prints a failure: the seed, the violation, and the replay
// shrunk by ddmin (at most budget replays).
func (r *Runner) Report(out io.Writer, res Result, budget int) (Replay, error) {
	v := res.Violation
	fmt.Fprintf(out, "sim: seed %d: %s after step %d of the run\n  %s\n", res.Replay.Seed, v.Kind, v.Step, v.Detail)
	rp := res.Replay
	rp.Steps = rp.Steps[:min(len(rp.Steps), v.Step)]
	short, tries, err := r.Shrink(rp, v.Kind, budget)
	if err != nil {
		return rp, err
	}
	fmt.Fprintf(out, "sim: shrunk from %d to %d steps in %d replays; replay with MEDIANET_SIM_REPLAY=FILE, or save it under internal/sim/testdata:\n%s",
		len(rp.Steps), len(short.Steps), tries, short)
	return short, nil
}

// WriteReplayFile saves rp with a comment heading it.
func WriteReplayFile(path, comment string, rp Replay) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if comment != "" {
		fmt.Fprintf(f, "# %s\n", comment)
	}
	if err := rp.Write(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// trace prints step s and where its operation is now.
func (w *World) trace(out io.Writer, s Step) {
	where := ""
	if o := w.ops[s.Op]; o != nil && (s.Kind == "run" || s.Kind == "kill" || opKinds[s.Kind]) {
		switch {
		case o.killed:
			where = "killed"
		case o.done:
			where = fmt.Sprintf("done (err %v)", o.err)
		default:
			where = "at " + o.where
		}
	}
	fmt.Fprintf(out, "%4d %-32s %s\n", w.steps, s, where)
}
