package scale

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/medianet/medianet/internal/etcdtest"
	"github.com/medianet/medianet/internal/etcdtest/simnode"
	"github.com/medianet/medianet/ipam"
	"github.com/medianet/medianet/ipam/etcdstore"
)

// blockBits is the block size of the simulated network (the default).
const blockBits = 26

// sim is one simulated cluster: the etcd members, the nodes and what
// they run.
type sim struct {
	t       *testing.T
	p       params
	n       int // nodes at the start
	etcd    *etcdtest.Cluster
	ecfg    *etcdstore.Config
	subnet  netip.Prefix
	checker *etcdstore.Client

	mu     sync.Mutex
	nodes  []*node // live nodes
	seq    int     // names new nodes
	agents int     // node agents running (agent_test.go)
}

// node is a simulated node and the pods it runs.
type node struct {
	*simnode.Node
	mu      sync.Mutex
	pods    []string // running pods (container IDs)
	pending int      // ADDs in flight
	seq     int
	kick    chan struct{} // a DEL emptied a block: the node agent syncs soon
}

// subnetFor sizes the subnet so that at most about half of its blocks
// are claimed at the end of a run of n nodes, as docs/ipam-etcd.md
// advises: two /26 blocks for each node at maxPods pods (and each
// replacement node), one for each node joining during the leader loss.
func subnetFor(n int) netip.Prefix {
	joins := int((leaderPre + leaderPost) / joinEvery)
	blocks := 2 * (2*(n+n/10) + joins)
	hostBits := bits.Len(uint(blocks-1)) + (32 - blockBits)
	return netip.PrefixFrom(netip.MustParseAddr("10.64.0.0"), 32-hostBits).Masked()
}

func newSim(t *testing.T, p params, n int) *sim {
	t.Helper()
	var opts etcdtest.Options
	switch p.security {
	case "password":
		opts = etcdtest.Options{TLS: true, Auth: true}
	case "cert":
		opts = etcdtest.Options{TLS: true, Auth: true, ClientCN: "medianet"}
	}
	cl := etcdtest.StartCluster(t, 3, opts)
	s := &sim{t: t, p: p, n: n, etcd: cl, ecfg: clientConfig(cl, p.security), subnet: subnetFor(n)}
	var err error
	if s.checker, err = etcdstore.New(*s.ecfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.checker.Close() })
	s.addNodes("node", n)
	return s
}

// clientConfig is how the nodes reach the cluster.
func clientConfig(cl *etcdtest.Cluster, security string) *etcdstore.Config {
	cfg := &etcdstore.Config{Endpoints: cl.Endpoints()}
	m := cl.Members[0]
	if m.TLS != nil {
		cfg.CAFile, cfg.CertFile, cfg.KeyFile = m.TLS.CAFile, m.TLS.ClientCert, m.TLS.ClientKey
	}
	if security == "password" {
		cfg.Username, cfg.Password = m.User, m.Password
	}
	return cfg
}

// ctlFlags are medianetctl's flags for reaching the cluster as the nodes
// do, and the environment that carries the password.
func (s *sim) ctlFlags() ([]string, []string) {
	c := s.ecfg
	flags := []string{"--etcd-endpoints", strings.Join(c.Endpoints, ",")}
	if c.CAFile != "" {
		flags = append(flags, "--etcd-ca", c.CAFile, "--etcd-cert", c.CertFile, "--etcd-key", c.KeyFile)
	}
	if c.Username == "" {
		return flags, nil
	}
	return append(flags, "--etcd-user", c.Username), []string{"MEDIANET_ETCD_PASSWORD=" + c.Password}
}

// addNodes creates count new nodes named prefix-<seq> and returns them.
func (s *sim) addNodes(prefix string, count int) []*node {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*node
	for range count {
		name := fmt.Sprintf("%s-%d", prefix, s.seq)
		s.seq++
		cfg := ipam.Config{
			Network: "media",
			Subnets: []ipam.Subnet{{Prefix: s.subnet}},
			Node:    name,
		}
		n := &node{Node: &simnode.Node{Name: name, Dir: s.t.TempDir(), Cfg: cfg, Etcd: s.ecfg}, kick: make(chan struct{}, 1)}
		s.nodes = append(s.nodes, n)
		out = append(out, n)
	}
	return out
}

// live returns the live nodes.
func (s *sim) live() []*node {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*node(nil), s.nodes...)
}

// check runs the cluster-wide duplicate and overlap check over the live
// nodes and fails the test on any finding.
func (s *sim) check(phase string) int {
	s.t.Helper()
	var ns []*simnode.Node
	for _, n := range s.live() {
		ns = append(ns, n.Node)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	total, err := simnode.CheckCluster(ctx, ns, s.checker)
	if err != nil {
		s.t.Fatalf("%s: cluster check: %v", phase, err)
	}
	return total
}

// retryable reports whether a runtime would retry the failed ADD (CNI
// error 11: etcd unavailable, store busy).
func retryable(err error) bool { return errors.Is(err, ipam.ErrBusy) }

// addPod starts one pod on n, retrying as a kubelet does while the error
// is retryable, until giveUp ends. Every attempt is recorded in st; each
// runs to its end (the allocator bounds its own waits).
func (s *sim) addPod(giveUp context.Context, n *node, st *stats) error {
	n.mu.Lock()
	cid := fmt.Sprintf("%s-pod-%d", n.Name, n.seq)
	n.seq++
	n.pending++
	n.mu.Unlock()
	backoff := 200 * time.Millisecond
	for {
		start := time.Now()
		_, tr, err := n.Add(context.Background(), cid)
		st.record(opAdd, start, time.Since(start), tr, err)
		if err == nil || !retryable(err) || giveUp.Err() != nil {
			n.mu.Lock()
			n.pending--
			if err == nil {
				n.pods = append(n.pods, cid)
			}
			n.mu.Unlock()
			if err != nil {
				return fmt.Errorf("node %s: ADD %s: %w", n.Name, cid, err)
			}
			return nil
		}
		time.Sleep(backoff/2 + rand.N(backoff/2))
		backoff = min(2*backoff, 2*time.Second)
	}
}

// delPod deletes a random pod of n (none: nothing to do).
func (s *sim) delPod(n *node, st *stats) error {
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
	tr, err := n.Del(context.Background(), cid)
	st.record(opDel, start, time.Since(start), tr, err)
	if err != nil {
		return fmt.Errorf("node %s: DEL %s: %w", n.Name, cid, err)
	}
	if !tr.Emptied {
		return nil // the agent's timer will publish the new usage
	}
	select { // the plugin's report asks the node agent for a sync (agent_test.go)
	case n.kick <- struct{}{}:
	default:
	}
	return nil
}

// step makes one churn move on n: an ADD or a DEL at random, keeping the
// node between minPods and maxPods pods.
func (s *sim) step(ctx context.Context, n *node, st *stats) error {
	n.mu.Lock()
	count := len(n.pods) + n.pending
	n.mu.Unlock()
	add := rand.N(2) == 0
	switch {
	case count >= s.p.maxPods:
		add = false
	case count <= s.p.minPods:
		add = true
	}
	if add {
		return s.addPod(ctx, n, st)
	}
	return s.delPod(n, st)
}

// run calls fn from workers goroutines until it has been called calls
// times (calls < 0: no limit) or until is reached (zero: no limit), or
// fn fails; it returns the first error. A call in progress is never cut
// short.
func run(workers, calls int, until time.Time, fn func(i int) error) error {
	var mu sync.Mutex
	var first error
	next := 0
	more := func() (int, bool) {
		mu.Lock()
		defer mu.Unlock()
		i := next
		next++
		done := first != nil || (calls >= 0 && i >= calls) || (!until.IsZero() && time.Now().After(until))
		return i, !done
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i, ok := more(); ok; i, ok = more() {
				if err := fn(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	return first
}
