package sim

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// gen draws a run's steps from its seed, looking at the world only for
// what a runtime or an operator would know (which containers exist,
// which operations are in flight, which node is lost).
type gen struct {
	rng     *rand.Rand
	nextOp  int
	nextCID int
	lost    bool
	// blockSize, when set, is the only block size of the run.
	blockSize int
	// caps are what the world's source supports (backend.caps).
	caps caps
}

func newGen(seed int64) *gen {
	return &gen{rng: rand.New(rand.NewPCG(uint64(seed), 0x5eed)), nextOp: 1}
}

var (
	blockSizes = []int{28, 28, 30, 32}
	cfgChanges = []string{"blockSize=24", "blockSize=26", "blockSize=28", "blockSize=30", "blockSize=32",
		"exclude=10.0.0.16/30", "exclude=10.0.0.64/28", "exclude=", "gateway=10.0.0.254", "gateway=10.0.0.1", "gateway=10.0.0.33",
		"sticky=0s", "sticky=5m0s"}
	jumps = []time.Duration{time.Second, 10 * time.Second, time.Minute, 3 * time.Minute, 6 * time.Minute, 11 * time.Minute}
)

const (
	maxInFlight = 4
	workloads   = 3
)

// first is the run's opening step: every node's block size.
func (g *gen) first() Step {
	if g.blockSize != 0 {
		return Step{Kind: "cfg", Node: -1, Cfg: fmt.Sprintf("blockSize=%d", g.blockSize)}
	}
	return Step{Kind: "cfg", Node: -1, Cfg: fmt.Sprintf("blockSize=%d", blockSizes[g.rng.IntN(len(blockSizes))])}
}

func (g *gen) next(w *World) Step {
	var inflight, runnable []*op
	for _, id := range w.opIDs() {
		if o := w.ops[id]; !o.done {
			inflight = append(inflight, o)
			if o.runnable() {
				runnable = append(runnable, o)
			}
		}
	}
	r := g.rng.Float64()
	switch {
	case len(runnable) > 0 && (r < 0.5 || len(inflight) >= maxInFlight):
		o := runnable[g.rng.IntN(len(runnable))]
		if g.rng.IntN(30) == 0 {
			return Step{Kind: "kill", Op: o.id}
		}
		return Step{Kind: "run", Op: o.id}
	case r < 0.57:
		return Step{Kind: "clock", Dur: jumps[g.rng.IntN(len(jumps))]}
	case r < 0.585:
		c := cfgChanges[g.rng.IntN(len(cfgChanges))]
		if (g.blockSize != 0 || !g.caps.BlockSizeChange) && strings.HasPrefix(c, "blockSize=") ||
			!g.caps.Sticky && strings.HasPrefix(c, "sticky=") {
			c = "exclude="
		}
		return Step{Kind: "cfg", Node: g.rng.IntN(len(w.nodes)), Cfg: c}
	case r < 0.62:
		return g.etcdFault(w)
	case r < 0.623 && !g.lost && len(w.nodes) >= 3:
		g.lost = true
		return Step{Kind: "lose", Node: g.rng.IntN(len(w.nodes))}
	}
	for _, n := range w.nodes {
		if n.dead && !n.reclaimed && g.rng.IntN(10) == 0 {
			s := Step{Kind: "reclaim", Node: n.idx, Force: g.rng.IntN(2) == 0}
			s.Gone = g.caps.ReclaimGone && g.rng.IntN(3) == 0
			s.Force = s.Force && !s.Gone
			return g.op(s)
		}
	}
	return g.newOp(w)
}

func (g *gen) etcdFault(w *World) Step {
	kind := "down"
	if g.rng.IntN(2) == 0 {
		kind = "up"
	}
	node := g.rng.IntN(len(w.nodes)+1) - 1
	return Step{Kind: kind, Node: node}
}

func (g *gen) op(s Step) Step {
	s.Op = g.nextOp
	g.nextOp++
	return s
}

// newOp starts an operation on a live node.
func (g *gen) newOp(w *World) Step {
	var live []*node
	for _, n := range w.nodes {
		if !n.dead {
			live = append(live, n)
		}
	}
	n := live[g.rng.IntN(len(live))]
	switch r := g.rng.IntN(100); {
	case r < 40:
		g.nextCID++
		s := Step{Kind: "add", Node: n.idx, CID: fmt.Sprintf("c%d", g.nextCID)}
		if g.rng.IntN(5) != 0 {
			s.Workload = fmt.Sprintf("app/w%d", g.rng.IntN(workloads))
		}
		s.Fail = g.rng.IntN(10) == 0
		return g.op(s)
	case r < 65:
		var cands []string
		for _, cid := range sortedKeys(n.known) {
			if st := n.known[cid].state; st == "live" || st == "failed" {
				cands = append(cands, cid)
			}
		}
		if len(cands) == 0 {
			return g.op(Step{Kind: "sync", Node: n.idx})
		}
		return g.op(Step{Kind: "del", Node: n.idx, CID: cands[g.rng.IntN(len(cands))]})
	case r < 80:
		return g.op(Step{Kind: "sync", Node: n.idx})
	case r < 86:
		return g.op(Step{Kind: "gc", Node: n.idx})
	case r < 94:
		return g.op(Step{Kind: "status", Node: n.idx})
	}
	return g.op(Step{Kind: "check", Node: n.idx})
}
