// Package soak is issue 10's soak (`make soak`): a bounded run of random
// CNI operations with faults injected at random points, over three nodes
// and a real etcd, with the cluster's invariants checked after every
// step.
//
// The cluster: one etcd in a network namespace of its own
// (internal/etcdtest.StartInNS); three nodes, each a network namespace
// linked to etcd's by a veth pair of its own (etcdtest's Link, which can
// cut that node alone off), with its own name, data directory and
// configuration files. Every operation is the real medianet-ipam binary
// (and the medianet-ipam-etcd it runs) or medianetctl, executed in the
// node's namespace as a runtime or a node agent would. Two networks: one
// claims small blocks in etcd and keeps sticky addresses, one has static
// nodeRanges (world_test.go).
//
// Each step runs a few operations at once (ADD with or without a pod name
// or a requested address, DEL, DEL of a sandbox deleted already, the
// runtime's DEL retries, `ipam sync`), or GC or STATUS alone, as the
// spec asks of runtimes; some are killed with SIGKILL midway. Between
// steps, faults start and heal: etcd stopped or killed and restarted,
// blackholed and healed, a node cut off and healed, and configuration
// changes rolled out node by node (exclude added and removed, gateway
// moved, blockSize changed, a node removed from nodeRanges and given its
// range back) (faults_test.go). After every step: `medianetctl ipam check`
// on every node exits 0 or 3, never 1; no address is held twice across
// the stores; no overlap between nodes' blocks or etcd's claims; the
// model's live containers keep their addresses; failed ADDs leave nothing;
// addresses reserved while in use are reported (verify_test.go). At the
// end every fault is healed, the runtime's DELs and GCs run, and no
// allocation is left that no live container explains; then everything is
// deleted and, once holds and idle times pass, the stores and etcd must
// be empty (final_test.go).
//
// sticky_test.go replays, deterministically, the defects of sticky
// addresses the soak found, so that each has a test that fails until it
// is fixed.
//
// `make test` runs a short soak (45 s of random steps, a new seed each
// time) as `make scale` has its small cluster in make test; `make soak`
// runs the long one. Settings:
//
//	MEDIANET_SOAK=1            the long run: steps for 10m by default
//	MEDIANET_SOAK_DURATION     how long the random steps run (default 45s,
//	                           10m with MEDIANET_SOAK=1)
//	MEDIANET_SOAK_SEED         the random seed (default: the clock), printed
//	MEDIANET_SOAK_LOG          where the step log goes (default: a file in
//	                           $TMPDIR named in the output)
//	MEDIANET_SOAK_STICKY       ipam.sticky of the etcd network (default 15s;
//	                           "off": no sticky addresses, which leaves the
//	                           moves of sticky addresses between nodes out)
package soak

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/medianet/medianet/internal/cnitest"
	"github.com/medianet/medianet/internal/etcdtest"
	"github.com/medianet/medianet/internal/nstest"
	"github.com/medianet/medianet/ipam/etcdstore"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// bins holds medianet-ipam, medianet-ipam-etcd and medianetctl:
// $MEDIANET_BIN, or built by TestMain when the soak runs.
var bins string

func TestMain(m *testing.M) {
	os.Exit(cnitest.Main(m, &bins, "medianet-ipam", "medianet-ipam-etcd", "medianetctl"))
}

// params are the soak's settings.
type params struct {
	duration time.Duration
	seed     uint64
	logPath  string
	sticky   string // ipam.sticky of the etcd network, "" for none
}

func loadParams(t *testing.T) params {
	p := params{duration: 45 * time.Second, seed: uint64(time.Now().UnixNano())}
	if os.Getenv("MEDIANET_SOAK") == "1" {
		p.duration = 10 * time.Minute
	}
	if v := os.Getenv("MEDIANET_SOAK_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("MEDIANET_SOAK_DURATION %q: want a duration such as 10m", v)
		}
		p.duration = d
	}
	if v := os.Getenv("MEDIANET_SOAK_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("MEDIANET_SOAK_SEED %q: want an unsigned integer", v)
		}
		p.seed = s
	}
	switch v := os.Getenv("MEDIANET_SOAK_STICKY"); v {
	case "":
		p.sticky = "15s"
	case "off":
	default:
		if d, err := time.ParseDuration(v); err != nil || d <= 0 {
			t.Fatalf("MEDIANET_SOAK_STICKY %q: want a duration such as 15s, or off", v)
		}
		p.sticky = v
	}
	p.logPath = os.Getenv("MEDIANET_SOAK_LOG")
	if p.logPath == "" {
		p.logPath = filepath.Join(os.TempDir(), fmt.Sprintf("medianet-soak-%d.log", p.seed))
	}
	return p
}

// soak is one run: the cluster, the model, the faults, the figures.
type soak struct {
	t      *testing.T
	p      params
	rng    *rand.Rand
	srv    *etcdtest.Server
	cli    *etcdstore.Client // reads claims for the checks
	etcd   *clientv3.Client  // reads etcd's revision (STATUS writes nothing)
	nodes  []*node
	model  *model
	faults *faults
	fig    *figures
	log    *stepLog
	step   int
	start  time.Time
	last   *clusterState // after the previous step
	absent []*container  // this step's failed ADDs
	pace   map[string]time.Duration
	logMu  sync.Mutex // the step log: operations log from their goroutines
}

func (s *soak) bin(name string) string { return filepath.Join(bins, name) }

// must fails the run on a harness error (not an invariant).
func (s *soak) must(err error) {
	if err != nil {
		s.t.Helper()
		s.fail("harness: %v", err)
	}
}

func TestSoak(t *testing.T) {
	nstest.SkipUnlessRoot(t)
	p := loadParams(t)
	s := setup(t, p)
	defer s.log.close()
	t.Logf("soak: seed %d, duration %v, sticky %q, step log %s, load %s", p.seed, p.duration, p.sticky, p.logPath, loadavg())
	for time.Since(s.start) < p.duration {
		s.oneStep()
	}
	s.final()
	t.Log("\n" + s.fig.report(s))
}

// setup starts etcd and the three nodes.
func setup(t *testing.T, p params) *soak {
	s := &soak{t: t, p: p, rng: rand.New(rand.NewPCG(p.seed, p.seed>>1|1)), model: newModel(),
		fig: newFigures(), pace: map[string]time.Duration{}}
	var err error
	if s.log, err = openLog(p.logPath); err != nil {
		t.Fatal(err)
	}
	s.srv = etcdtest.StartInNS(t, etcdtest.Options{})
	names := []string{"a", "b", "c"}
	specs := initialSpecs(names, p.sticky)
	for _, name := range names {
		n := &node{name: name, ns: nstest.NewNS(t, "mnsoak"+name), dir: t.TempDir(), confDir: t.TempDir(), specs: map[string]netSpec{}}
		n.endpoint, n.cut = s.srv.Link(t, n.ns)
		for _, net := range netNames {
			if err := n.setSpec(specs[net].clone()); err != nil {
				t.Fatal(err)
			}
		}
		s.nodes = append(s.nodes, n)
	}
	s.faults = newFaults(specs, len(names))
	if s.cli, err = etcdstore.New(etcdstore.Config{Endpoints: s.srv.Endpoints(), Prefix: etcdPfx, RequestTimeout: 3 * time.Second}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.cli.Close() })
	if s.etcd, err = s.srv.RootClient(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.etcd.Close() })
	s.start = time.Now()
	s.last, _ = s.readState()
	return s
}

// oneStep: faults and changes due, the step's operations, their
// outcomes, then every invariant.
func (s *soak) oneStep() {
	s.step++
	s.fig.steps++
	s.tick()
	ops := s.plan()
	syncs := map[int]bool{}
	for _, o := range ops {
		syncs[o.node] = syncs[o.node] || o.kind == opSync
	}
	for _, o := range ops {
		if !syncs[o.node] {
			o.expect = s.stickyExpect(o)
		}
	}
	var before digest
	if len(ops) == 1 && ops[0].kind == opStatus {
		before = s.digest(ops[0].node)
	}
	s.run(ops)
	s.absent = nil
	for _, o := range ops {
		s.settle(o)
	}
	if len(ops) == 1 && ops[0].kind == opStatus {
		s.statusWroteNothing(ops[0], before)
	}
	s.checkInvariants()
}

// checkInvariants reads the cluster and fails the run on any violation.
func (s *soak) checkInvariants() {
	cs, bad := s.readState()
	if len(bad) == 0 {
		s.fig.checks["medianetctl check"]++
	}
	e := expect{live: s.model.live(-1, ""), absent: s.absent}
	for _, n := range s.nodes {
		e.specs = append(e.specs, n.specs)
	}
	bad = append(bad, verify(cs, e, func(name string) { s.fig.checks[name]++ })...)
	for _, n := range cs.nodes {
		for _, f := range n.findings {
			s.fig.findings[f.Kind]++
		}
	}
	s.last = cs
	if len(bad) > 0 {
		s.logState(cs)
		s.fail("invariants violated after step %d:\n  %s", s.step, joinLines(bad))
	}
}

// logState writes the cluster's state to the step log's file.
func (s *soak) logState(cs *clusterState) {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	s.log.fileOnly("state:\n" + describe(cs))
}

// loadavg returns /proc/loadavg's first three fields.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	var l1, l5, l15 string
	fmt.Sscan(string(b), &l1, &l5, &l15)
	return l1 + " " + l5 + " " + l15
}
