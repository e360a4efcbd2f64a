package sim

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Step is one entry of a run: it starts an operation (add, del, gc,
// status, check, sync, reclaim, release), moves one (run: to its next yield point
// or its end; kill: its process dies at the yield point where it is
// parked), or changes the world at once (clock, cfg, down, up, lose,
// drain). A step naming an operation or a node that does not exist (a
// shrunk replay dropped it) does nothing.
type Step struct {
	Kind     string
	Op       int           // the operation started (add...release) or moved (run, kill)
	Node     int           // node index; -1: every node (down, up, cfg)
	CID      string        // add, del, release: the container
	Workload string        // add: its workload ("" for none)
	Fail     bool          // add: fails after the allocation; the plugin rolls back
	Force    bool          // reclaim: --force
	Gone     bool          // reclaim: --gone (the nodes whose Node object is gone), kube worlds only
	Dur      time.Duration // clock: how far the clock jumps
	Cfg      string        // cfg: "blockSize=32", "exclude=10.0.0.16/30", "gateway=10.0.0.254", "sticky=0s"
}

// opKinds are the kinds that start an operation.
var opKinds = map[string]bool{"add": true, "del": true, "gc": true, "status": true, "check": true, "sync": true, "reclaim": true, "release": true}

func nodeName(i int) string {
	if i < 0 {
		return "all"
	}
	return "n" + strconv.Itoa(i)
}

// String is the step's line in a replay.
func (s Step) String() string {
	n := nodeName(s.Node)
	switch s.Kind {
	case "add":
		out := fmt.Sprintf("%d add %s %s", s.Op, n, s.CID)
		if s.Workload != "" {
			out += " w=" + s.Workload
		}
		if s.Fail {
			out += " fail"
		}
		return out
	case "del", "release":
		return fmt.Sprintf("%d %s %s %s", s.Op, s.Kind, n, s.CID)
	case "reclaim":
		out := fmt.Sprintf("%d reclaim %s", s.Op, n)
		if s.Force {
			out += " force"
		}
		if s.Gone {
			out += " gone"
		}
		return out
	case "gc", "status", "check", "sync":
		return fmt.Sprintf("%d %s %s", s.Op, s.Kind, n)
	case "run", "kill":
		return fmt.Sprintf("%s %d", s.Kind, s.Op)
	case "clock":
		return "clock " + s.Dur.String()
	case "cfg":
		return fmt.Sprintf("cfg %s %s", n, s.Cfg)
	case "down", "up", "lose":
		return s.Kind + " " + n
	}
	return s.Kind
}

// ParseStep reads a line written by Step.String.
func ParseStep(line string) (Step, error) {
	f := strings.Fields(line)
	if len(f) == 0 {
		return Step{}, fmt.Errorf("empty step")
	}
	bad := func(why string) (Step, error) { return Step{}, fmt.Errorf("step %q: %s", line, why) }
	node := func(s string) (int, error) {
		if s == "all" {
			return -1, nil
		}
		i, err := strconv.Atoi(strings.TrimPrefix(s, "n"))
		if err != nil || !strings.HasPrefix(s, "n") || i < 0 {
			return 0, fmt.Errorf("node %q: want nN or all", s)
		}
		return i, nil
	}
	if id, err := strconv.Atoi(f[0]); err == nil {
		if len(f) < 3 || !opKinds[f[1]] {
			return bad("want ID KIND NODE ...")
		}
		s := Step{Op: id, Kind: f[1]}
		if s.Node, err = node(f[2]); err != nil {
			return bad(err.Error())
		}
		rest := f[3:]
		if s.Kind == "add" || s.Kind == "del" || s.Kind == "release" {
			if len(rest) == 0 {
				return bad("no container ID")
			}
			s.CID, rest = rest[0], rest[1:]
		}
		for _, a := range rest {
			switch {
			case strings.HasPrefix(a, "w=") && s.Kind == "add":
				s.Workload = strings.TrimPrefix(a, "w=")
			case a == "fail" && s.Kind == "add":
				s.Fail = true
			case a == "force" && s.Kind == "reclaim":
				s.Force = true
			case a == "gone" && s.Kind == "reclaim":
				s.Gone = true
			default:
				return bad("unknown argument " + a)
			}
		}
		return s, nil
	}
	s := Step{Kind: f[0]}
	var err error
	switch s.Kind {
	case "run", "kill":
		if len(f) != 2 {
			return bad("want run|kill ID")
		}
		if s.Op, err = strconv.Atoi(f[1]); err != nil {
			return bad(err.Error())
		}
	case "clock":
		if len(f) != 2 {
			return bad("want clock DURATION")
		}
		if s.Dur, err = time.ParseDuration(f[1]); err != nil {
			return bad(err.Error())
		}
	case "cfg":
		if len(f) != 3 {
			return bad("want cfg NODE KEY=VALUE")
		}
		if s.Node, err = node(f[1]); err != nil {
			return bad(err.Error())
		}
		s.Cfg = f[2]
	case "down", "up", "lose":
		if len(f) != 2 {
			return bad("want " + s.Kind + " NODE")
		}
		if s.Node, err = node(f[1]); err != nil {
			return bad(err.Error())
		}
	case "drain":
	default:
		return bad("unknown kind")
	}
	return s, nil
}

// Replay is what reproduces a run: its seed (for the record), the source
// it ran against and its steps.
type Replay struct {
	Seed  int64
	Nodes int
	// Source is "kube" for a world against the Kubernetes API, "" for
	// etcd.
	Source string
	Steps  []Step
}

// Write writes r in the text form ReadReplay reads: "seed N", "nodes N",
// "source kube" for a kube world, then one step a line.
func (r Replay) Write(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "seed %d\nnodes %d\n", r.Seed, r.Nodes)
	if r.Source != "" {
		fmt.Fprintf(bw, "source %s\n", r.Source)
	}
	for _, s := range r.Steps {
		fmt.Fprintln(bw, s)
	}
	return bw.Flush()
}

func (r Replay) String() string {
	var b strings.Builder
	_ = r.Write(&b)
	return b.String()
}

// ReadReplay reads a replay; lines starting with # are comments.
func ReadReplay(rd io.Reader) (Replay, error) {
	r := Replay{Nodes: DefaultNodes}
	sc := bufio.NewScanner(rd)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if v, ok := strings.CutPrefix(line, "seed "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return r, fmt.Errorf("seed %q: %w", v, err)
			}
			r.Seed = n
			continue
		}
		if v, ok := strings.CutPrefix(line, "source "); ok {
			if v != "kube" {
				return r, fmt.Errorf("source %q: want kube (etcd is the default, not written)", v)
			}
			r.Source = v
			continue
		}
		if v, ok := strings.CutPrefix(line, "nodes "); ok {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return r, fmt.Errorf("nodes %q: want a positive number", v)
			}
			r.Nodes = n
			continue
		}
		s, err := ParseStep(line)
		if err != nil {
			return r, err
		}
		r.Steps = append(r.Steps, s)
	}
	return r, sc.Err()
}
