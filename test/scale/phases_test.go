package scale

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// phase is the outcome of one phase, for the report.
type phase struct {
	n      int // the run's node count
	live   int // nodes alive at the end of the phase
	name   string
	wall   time.Duration
	sum    summary
	etcd   etcdDelta
	facts  []string
	load   string
	allocs int
}

func (s *sim) finish(name string, start time.Time, st *stats, before etcdSnap) phase {
	wall := time.Since(start)
	ph := phase{n: s.n, live: len(s.live()), name: name, wall: wall, sum: summarize(st.snapshot()), etcd: diff(before, s.etcdSnapshot()), load: loadAvg()}
	ph.allocs = s.check(name)
	return ph
}

// coldStart: every node starts coldPods pods at once; each node's first
// ADD claims a block. Reported: the time until every node holds an
// address.
func (s *sim) coldStart() phase {
	nodes := s.live()
	st := &stats{}
	giveUp, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var mu sync.Mutex
	first := make([]time.Duration, len(nodes))
	var errs []error
	gate := make(chan struct{})
	var start time.Time // set before the gate opens
	var wg sync.WaitGroup
	for i, n := range nodes {
		for range s.p.coldPods {
			wg.Go(func() {
				<-gate
				err := s.addPod(giveUp, n, st)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, err)
				} else if first[i] == 0 {
					first[i] = time.Since(start)
				}
			})
		}
	}
	before := s.etcdSnapshot()
	start = time.Now()
	close(gate)
	wg.Wait()
	if len(errs) > 0 {
		s.t.Fatalf("cold start: %d ADDs failed for good, first: %v", len(errs), errs[0])
	}
	ph := s.finish("cold start", start, st, before)
	ph.facts = append(ph.facts, fmt.Sprintf("every node held an address %s after the start (node p50 %s)", ms(maxOf(first)), ms(pct(first, 50))))
	return ph
}

// fill brings every node to minPods pods, in random node order.
func (s *sim) fill(name string, nodes []*node) phase {
	var work []*node
	for _, n := range nodes {
		n.mu.Lock()
		for range s.p.minPods - len(n.pods) {
			work = append(work, n)
		}
		n.mu.Unlock()
	}
	rand.Shuffle(len(work), func(i, j int) { work[i], work[j] = work[j], work[i] })
	st := &stats{}
	before, start := s.etcdSnapshot(), time.Now()
	giveUp, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	if err := run(s.p.workers, len(work), time.Time{}, func(i int) error { return s.addPod(giveUp, work[i], st) }); err != nil {
		s.t.Fatalf("%s: %v", name, err)
	}
	return s.finish(name, start, st, before)
}

// syncRound: every node runs its sync with etcd once (what the node
// agent, CNI GC and `medianetctl ipam sync` run: usage published, idle
// blocks given back), workers at a time.
func (s *sim) syncRound(name string) phase {
	nodes := s.live()
	st := &stats{}
	before, start := s.etcdSnapshot(), time.Now()
	err := run(s.p.workers, len(nodes), time.Time{}, func(i int) error {
		t0 := time.Now()
		_, tr, err := nodes[i].Sync(context.Background())
		st.record(opSync, t0, time.Since(t0), tr, err)
		return err
	})
	if err != nil {
		s.t.Fatalf("%s: %v", name, err)
	}
	ph := s.finish(name, start, st, before)
	ph.facts = append(ph.facts, fmt.Sprintf("%d node syncs, p50 / p99 / max %s; %.1f etcd requests and %.1f writes per node",
		ph.sum.syncs, lat(ph.sum.sync), float64(ph.sum.requests)/float64(len(nodes)), float64(ph.sum.writes)/float64(len(nodes))))
	return ph
}

// churn: for the churn window, workers pick random nodes and add or
// delete one pod at random on each (every node stays between minPods and
// maxPods pods).
func (s *sim) churn() phase {
	st := &stats{}
	before, start := s.etcdSnapshot(), time.Now()
	stop := s.startAgents(st)
	err := s.churnUntil(start.Add(s.p.churn), st)
	stop()
	if err != nil {
		s.t.Fatalf("churn: %v", err)
	}
	ph := s.finish("steady churn", start, st, before)
	ph.facts = append(ph.facts, fmt.Sprintf("%.0f ADD+DEL per second", float64(ph.sum.adds+ph.sum.dels)/ph.wall.Seconds()),
		agentFact(ph.sum, s.agents, ph.wall))
	return ph
}

// agentFact says what the node agents' syncs cost during a phase.
func agentFact(s summary, nodes int, wall time.Duration) string {
	perMin := float64(s.syncs) / float64(nodes) / wall.Minutes()
	return fmt.Sprintf("%d node agents: %d syncs (%.1f per node per minute), p50 / p99 / max %s; all operations together made %d etcd requests and %d writes",
		nodes, s.syncs, perMin, lat(s.sync), s.requests, s.writes)
}

func (s *sim) churnUntil(until time.Time, st *stats) error {
	nodes := s.live()
	giveUp, cancel := context.WithTimeout(context.Background(), time.Until(until)+time.Minute)
	defer cancel()
	return run(s.p.workers, -1, until, func(int) error {
		return s.step(giveUp, nodes[rand.N(len(nodes))], st)
	})
}
