package scale

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/medianet/medianet/internal/etcdtest"
	"github.com/medianet/medianet/internal/etcdtest/simnode"
	"github.com/medianet/medianet/internal/kubetest"
	"github.com/medianet/medianet/ipam"
	"github.com/medianet/medianet/ipam/etcdstore"
	"github.com/medianet/medianet/ipam/kubestore"
)

// The sources comparison's shape: /28 blocks (16 addresses), so that
// churn between srcMinPods and srcMaxPods pods per node crosses block
// boundaries and claims; coldPods pods per node at the start.
const (
	srcBlockBits = 28
	srcMinPods   = 3
	srcMaxPods   = 24
)

// srcParams are TestScaleSources' sizes, from the environment:
//
//	MEDIANET_SCALE_SOURCES_NODES  node counts, comma-separated (default 10)
//	MEDIANET_SCALE_SOURCES_ADDS   ADDs of the churn phase (default 200)
//	MEDIANET_SCALE_WORKERS        concurrent operations in churn (default 16)
//	MEDIANET_SCALE_SOURCES_TIMEOUT both sources' requestTimeout (default 2s,
//	                              the configurations' default)
//	MEDIANET_SCALE_SOURCES_OUT    also write the report (markdown) here
//	MEDIANET_WHEREABOUTS          a whereabouts CNI binary: run the churn's
//	                              number of ADDs through it too, beside the
//	                              first node count (whereabouts_test.go)
type srcParams struct {
	nodes       []int
	adds        int
	workers     int
	coldPods    int
	timeout     time.Duration // the sources' requestTimeout; 0: their default
	out         string
	whereabouts string
}

func loadSrcParams(t *testing.T) srcParams {
	t.Helper()
	p := srcParams{nodes: []int{10}, adds: 200, workers: 16, coldPods: srcMinPods,
		out: os.Getenv("MEDIANET_SCALE_SOURCES_OUT"), whereabouts: os.Getenv("MEDIANET_WHEREABOUTS")}
	if v := os.Getenv("MEDIANET_SCALE_SOURCES_NODES"); v != "" {
		p.nodes = nil
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 2 {
				t.Fatalf("MEDIANET_SCALE_SOURCES_NODES %q: want node counts of at least 2, comma-separated", v)
			}
			p.nodes = append(p.nodes, n)
		}
	}
	if v := os.Getenv("MEDIANET_SCALE_SOURCES_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("MEDIANET_SCALE_SOURCES_TIMEOUT %q: want a positive duration such as 10s", v)
		}
		p.timeout = d
	}
	for env, dst := range map[string]*int{"MEDIANET_SCALE_SOURCES_ADDS": &p.adds, "MEDIANET_SCALE_WORKERS": &p.workers} {
		if v := os.Getenv(env); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				t.Fatalf("%s %q: want a positive count", env, v)
			}
			*dst = n
		}
	}
	return p
}

// srcNode is a simulated node of either source.
type srcNode interface {
	add(ctx context.Context, cid string) (simnode.Trace, error)
	del(ctx context.Context, cid string) (simnode.Trace, error)
	sync(ctx context.Context) (simnode.Trace, error)
	store() *simnode.Node
}

// etcdNode adapts simnode.Node (the etcd source) to srcNode.
type etcdNode struct{ *simnode.Node }

func (n etcdNode) add(ctx context.Context, cid string) (simnode.Trace, error) {
	_, tr, err := n.Add(ctx, cid)
	return tr, err
}
func (n etcdNode) del(ctx context.Context, cid string) (simnode.Trace, error) { return n.Del(ctx, cid) }
func (n etcdNode) sync(ctx context.Context) (simnode.Trace, error) {
	_, tr, err := n.Sync(ctx)
	return tr, err
}
func (n etcdNode) store() *simnode.Node { return n.Node }

// backend is a running block store of one source: how to make its
// nodes, count the requests it served, and check the cluster.
type backend struct {
	name     string
	what     string // what the request count counts
	node     func(name string, cfg ipam.Config, dir string) srcNode
	requests func(ctx context.Context) (float64, error)
	check    func(ctx context.Context, nodes []*simnode.Node) (int, error)
}

// etcdBackend starts a three-member etcd cluster, as TestScale does.
func etcdBackend(t *testing.T, timeout time.Duration) *backend {
	cl := etcdtest.StartCluster(t, 3, etcdtest.Options{})
	cfg := &etcdstore.Config{Endpoints: cl.Endpoints(), RequestTimeout: timeout}
	checker, err := etcdstore.New(*cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { checker.Close() })
	return &backend{
		name: "etcd", what: "etcd KV requests (3 members)",
		node: func(name string, c ipam.Config, dir string) srcNode {
			return etcdNode{&simnode.Node{Name: name, Dir: dir, Cfg: c, Etcd: cfg}}
		},
		requests: func(ctx context.Context) (float64, error) {
			total := 0.0
			for _, m := range cl.Members {
				ms, err := m.Metrics(ctx)
				if err != nil {
					return 0, err
				}
				total += ms.Sum("grpc_server_handled_total", `grpc_service="etcdserverpb.KV"`)
			}
			return total, nil
		},
		check: func(ctx context.Context, nodes []*simnode.Node) (int, error) {
			return simnode.CheckCluster(ctx, nodes, checker)
		},
	}
}

// kubeBackend starts a real kube-apiserver (internal/kubetest); the nodes
// authenticate as medianet's agent (least privilege).
func kubeBackend(t *testing.T, timeout time.Duration) (*backend, *kubetest.Server) {
	srv := kubetest.Start(t)
	checker, err := kubestore.New(kubestore.Config{Kubeconfig: srv.AdminKubeconfig, RequestTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	kc := kubestore.Config{Kubeconfig: srv.AgentKubeconfig, RequestTimeout: timeout}
	return &backend{
		name: "kubernetes", what: "API requests to ipam.medianet.io and nodes",
		node: func(name string, c ipam.Config, dir string) srcNode {
			return &kubeNode{Node: &simnode.Node{Name: name, Dir: dir, Cfg: c}, kc: kc}
		},
		requests: func(ctx context.Context) (float64, error) {
			return apiRequests(ctx, srv, []string{kubestore.Group}, []string{"nodes"})
		},
		check: func(ctx context.Context, nodes []*simnode.Node) (int, error) { return checkKube(ctx, nodes, checker) },
	}, srv
}

// srcSubnet leaves room for four /28 blocks per node.
func srcSubnet(n int) netip.Prefix {
	hostBits := bits.Len(uint(4*n-1)) + (32 - srcBlockBits)
	return netip.PrefixFrom(netip.MustParseAddr("10.64.0.0"), 32-hostBits).Masked()
}

// srcSim is one source's simulated cluster.
type srcSim struct {
	t      *testing.T
	p      srcParams
	be     *backend
	nodes  []*srcPods
	failed bool // the cold start did not converge
}

// srcPods is a node and its running pods.
type srcPods struct {
	srcNode
	name    string
	mu      sync.Mutex
	pods    []string
	pending int
	seq     int
}

func newSrcSim(t *testing.T, p srcParams, be *backend, n int) *srcSim {
	s := &srcSim{t: t, p: p, be: be}
	subnet := srcSubnet(n)
	for i := range n {
		name := fmt.Sprintf("node-%d", i)
		cfg := ipam.Config{Network: "media", Subnets: []ipam.Subnet{{Prefix: subnet}}, BlockSize: srcBlockBits, Node: name}
		s.nodes = append(s.nodes, &srcPods{srcNode: be.node(name, cfg, t.TempDir()), name: name})
	}
	return s
}

// addPod starts one pod on n, retrying as a kubelet does while the error
// is retryable (CNI 11), until giveUp ends.
func (s *srcSim) addPod(giveUp context.Context, n *srcPods, st *stats) error {
	n.mu.Lock()
	cid := fmt.Sprintf("%s-pod-%d", n.name, n.seq)
	n.seq++
	n.pending++
	n.mu.Unlock()
	backoff := 200 * time.Millisecond
	for {
		start := time.Now()
		tr, err := n.add(context.Background(), cid)
		st.record(opAdd, start, time.Since(start), tr, err)
		if err == nil || !retryable(err) || giveUp.Err() != nil {
			n.mu.Lock()
			n.pending--
			if err == nil {
				n.pods = append(n.pods, cid)
			}
			n.mu.Unlock()
			if err != nil {
				return fmt.Errorf("node %s: ADD %s: %w", n.name, cid, err)
			}
			return nil
		}
		time.Sleep(backoff/2 + rand.N(backoff/2))
		backoff = min(2*backoff, 2*time.Second)
	}
}

func (s *srcSim) delPod(n *srcPods, st *stats) error {
	n.mu.Lock()
	if len(n.pods) == 0 {
		n.mu.Unlock()
		return nil
	}
	i := rand.N(len(n.pods))
	cid := n.pods[i]
	n.pods[i] = n.pods[len(n.pods)-1]
	n.pods = n.pods[:len(n.pods)-1]
	n.mu.Unlock()
	start := time.Now()
	tr, err := n.del(context.Background(), cid)
	st.record(opDel, start, time.Since(start), tr, err)
	if err != nil {
		return fmt.Errorf("node %s: DEL %s: %w", n.name, cid, err)
	}
	return nil
}

// srcPhase is one phase of one source, for the report.
type srcPhase struct {
	source, what string
	n            int
	name         string
	wall         time.Duration
	sum          summary
	requests     float64 // served by the backend (server side)
	allocs       int
	facts        []string
}

// measure runs fn and returns the phase: the backend's requests before
// and after, then the cluster check (whose own requests are not counted).
func (s *srcSim) measure(name string, fn func(st *stats) []string) srcPhase {
	s.t.Helper()
	ctx := context.Background()
	before := s.requests(name)
	st := &stats{}
	start := time.Now()
	facts := fn(st)
	wall := time.Since(start)
	after := s.requests(name)
	var nodes []*simnode.Node
	for _, n := range s.nodes {
		nodes = append(nodes, n.store())
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	allocs, err := s.be.check(cctx, nodes)
	if err != nil {
		s.t.Fatalf("%s: %s: cluster check: %v", s.be.name, name, err)
	}
	return srcPhase{source: s.be.name, what: s.be.what, n: len(s.nodes), name: name, wall: wall,
		sum: summarize(st.snapshot()), requests: after - before, allocs: allocs, facts: facts}
}

// requests reads the backend's request count, asking up to 5 times: a
// loaded machine may let one scrape time out.
func (s *srcSim) requests(phase string) float64 {
	s.t.Helper()
	var err error
	for range 5 {
		var v float64
		if v, err = s.be.requests(context.Background()); err == nil {
			return v
		}
	}
	s.t.Fatalf("%s: %s: count requests: %v", s.be.name, phase, err)
	return 0
}

// coldStart: every node starts coldPods pods at once; each node's first
// ADD claims a block. The fact: when every node held an address.
func (s *srcSim) coldStart(st *stats) []string {
	giveUp, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var mu sync.Mutex
	first := make([]time.Duration, len(s.nodes))
	var errs []error
	gate := make(chan struct{})
	var start time.Time
	var wg sync.WaitGroup
	for i, n := range s.nodes {
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
	start = time.Now()
	close(gate)
	wg.Wait()
	if len(errs) > 0 {
		// A result to report (the table keeps the phase), and a failure.
		s.t.Errorf("%s: cold start: %d ADDs failed for good, first: %v", s.be.name, len(errs), errs[0])
		s.failed = true
		return []string{fmt.Sprintf("did not converge: %d of %d ADDs still failing after 10 minutes of retries (the rest of this source's phases skipped); the last error of the first: %v",
			len(errs), len(s.nodes)*s.p.coldPods, errs[0])}
	}
	return []string{fmt.Sprintf("every node held an address %s after the start (node p50 %s)", ms(maxOf(first)), ms(pct(first, 50)))}
}

// churn: workers pick random nodes and add or delete a pod on each
// (every node between srcMinPods and srcMaxPods pods) until p.adds ADDs
// have started.
func (s *srcSim) churn(st *stats) []string {
	giveUp, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	var mu sync.Mutex
	adds := 0
	err := run(s.p.workers, -1, time.Time{}, func(int) error {
		n := s.nodes[rand.N(len(s.nodes))]
		n.mu.Lock()
		count := len(n.pods) + n.pending
		n.mu.Unlock()
		add := rand.N(2) == 0
		switch {
		case count >= srcMaxPods:
			add = false
		case count <= srcMinPods:
			add = true
		}
		if !add {
			return s.delPod(n, st)
		}
		mu.Lock()
		done := adds >= s.p.adds
		adds++
		mu.Unlock()
		if done {
			return errChurnDone
		}
		return s.addPod(giveUp, n, st)
	})
	if err != nil && !errors.Is(err, errChurnDone) {
		s.t.Fatalf("%s: churn: %v", s.be.name, err)
	}
	return nil
}

var errChurnDone = errors.New("churn: every ADD started")

// syncRound: every node runs its sync once (what the node agent, CNI GC
// and `medianetctl ipam sync` run), workers at a time. A sync the backend
// did not answer in time is counted, as the agent logs it and syncs again
// later; any other failure fails the test.
func (s *srcSim) syncRound(st *stats) []string {
	err := run(s.p.workers, len(s.nodes), time.Time{}, func(i int) error {
		t0 := time.Now()
		tr, err := s.nodes[i].sync(context.Background())
		st.record(opSync, t0, time.Since(t0), tr, err)
		if errors.Is(err, etcdstore.ErrUnavailable) || errors.Is(err, kubestore.ErrUnavailable) {
			return nil
		}
		return err
	})
	if err != nil {
		s.t.Fatalf("%s: sync round: %v", s.be.name, err)
	}
	return nil
}

// runSource runs the phases of one source with n nodes.
func runSource(t *testing.T, p srcParams, be *backend, n int) []srcPhase {
	s := newSrcSim(t, p, be, n)
	out := []srcPhase{s.measure("cold start", s.coldStart)}
	if !s.failed {
		out = append(out, s.measure("churn", s.churn), s.measure("sync round", s.syncRound))
	}
	for _, ph := range out {
		t.Logf("%s", ph.line())
	}
	return out
}

// TestScaleSources runs the same cold start and churn against each block
// source in one run, on one machine: the etcd source on a three-member
// etcd, the kubernetes source on a real kube-apiserver (one etcd behind
// it), and, when MEDIANET_WHEREABOUTS names its binary, Whereabouts'
// ADDs on the same API server. It reports the backend's requests per
// 1,000 ADDs and the time until every node held an address, fails on any
// duplicate or overlap and on an ADD that fails for good, and asserts no
// timing.
func TestScaleSources(t *testing.T) {
	p := loadSrcParams(t)
	var phases []srcPhase
	var wb []wbResult
	for _, n := range p.nodes {
		t.Run(fmt.Sprintf("nodes=%d/etcd", n), func(t *testing.T) {
			phases = append(phases, runSource(t, p, etcdBackend(t, p.timeout), n)...)
		})
		t.Run(fmt.Sprintf("nodes=%d/kubernetes", n), func(t *testing.T) {
			be, srv := kubeBackend(t, p.timeout)
			phases = append(phases, runSource(t, p, be, n)...)
			if p.whereabouts != "" && n == p.nodes[0] { // once: it takes minutes
				wb = append(wb, runWhereabouts(t, p, srv, n))
			}
		})
	}
	rep := srcReport(p, phases, wb)
	fmt.Print(rep)
	if p.out != "" {
		if err := os.WriteFile(p.out, []byte(rep), 0o644); err != nil {
			t.Errorf("write %s: %v", p.out, err)
		}
	}
}
