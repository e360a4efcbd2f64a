package sim

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/medianet/medianet/ipam"
	"github.com/medianet/medianet/ipam/boltstore"
)

// The simulated network: one /24, small blocks, sticky workloads.
const (
	// DefaultNodes is the number of nodes of a run.
	DefaultNodes = 3
	// Network is the simulated network's name.
	Network = "media"
	// Sticky is the network's sticky period; IdleRelease its etcd
	// idle-release time.
	Sticky      = 5 * time.Minute
	IdleRelease = 2 * time.Minute
	ifname      = "eth0"
)

var (
	subnet = netip.MustParsePrefix("10.0.0.0/24")
	// epoch is where the fake clock starts.
	epoch = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	// errUnreachable is what the hook returns while the source (etcd,
	// the API server) is down for the calling node.
	errUnreachable = errors.New("unreachable (simulated)")
	worldSeq       atomic.Int64
)

// node is one simulated node: its store, configuration and what its
// container runtime believes it runs.
type node struct {
	idx       int
	name      string
	bolt      *boltstore.Store
	cfg       ipam.Config
	dead      bool // lost for good
	reclaimed bool
	down      bool // the source is unreachable from the node
	claimBusy bool // the claim lock is held (by an operation parked with it)
	storeGen  int  // bumped by every committed Update
	known     map[string]*container
}

// container is the runtime's view of one container of a node.
type container struct {
	workload string
	state    string // adding, live, failed (the runtime still owes a DEL), deleting
}

// World is one run's cluster: nodes, the source they claim blocks in
// (etcd under a prefix of its own, or the Kubernetes API), the fake clock
// and the operations in flight.
type World struct {
	be    backend
	dir   string
	nodes []*node
	ops   map[int]*op
	now   time.Time
	// downAll: the source unreachable for every node.
	downAll bool

	srcDirty  bool // a request was made since snap was read
	snap      *clusterState
	stores    map[int]*storeState
	violation *Violation
	steps     int // steps applied
	// noop marks the steps applied so far that changed nothing (an
	// operation already ended, a node already lost), for Shrink.
	noop    []bool
	drainOp int
}

// newWorld makes a world of n nodes with stores under r.Dir (a fresh
// directory of its own) and records in r's source (etcd keys under a
// fresh prefix, or the Kubernetes API emptied of the network's objects).
func (r *Runner) newWorld(n int) (*World, error) {
	dir, err := os.MkdirTemp(r.Dir, "world-")
	if err != nil {
		return nil, err
	}
	w := &World{dir: dir, ops: map[int]*op{}, now: epoch, stores: map[int]*storeState{}, drainOp: 1 << 30, srcDirty: true}
	if r.Kube != nil {
		w.be, err = newKubeBackend(r.Kube, r.admin, w, n)
	} else {
		w.be, err = newEtcdBackend(r.Endpoints, r.raw, w)
	}
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	sticky := time.Duration(0)
	if w.be.caps().Sticky {
		sticky = Sticky
	}
	for i := range n {
		name := nodeName(i)
		st, err := boltstore.Open(context.Background(), filepath.Join(dir, name), boltstore.Options{NoSync: true})
		if err != nil {
			w.close()
			return nil, err
		}
		w.nodes = append(w.nodes, &node{idx: i, name: name, bolt: st, known: map[string]*container{},
			cfg: ipam.Config{Network: Network, Subnets: []ipam.Subnet{{Prefix: subnet}}, BlockSize: 28, Node: name, Sticky: sticky}})
	}
	return w, nil
}

// close ends every operation still parked (as killed processes), and
// removes the world's stores and its records in the source.
func (w *World) close() {
	for _, id := range w.opIDs() {
		if o := w.ops[id]; !o.done {
			o.resume <- false
			<-o.park
		}
	}
	w.be.close()
	os.RemoveAll(w.dir)
}

func (w *World) node(i int) *node {
	if i < 0 || i >= len(w.nodes) {
		return nil
	}
	return w.nodes[i]
}

// opIDs returns the operations' IDs in order.
func (w *World) opIDs() []int {
	ids := make([]int, 0, len(w.ops))
	for id := range w.ops {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// hook is etcdstore.Config.Hook and kubestore.Config.Hook: a yield point
// before every request of an operation to the source, then the source
// reachable or not for its node.
func (w *World) hook(ctx context.Context, what string) error {
	o, _ := ctx.Value(opKey{}).(*op)
	if o == nil {
		return nil
	}
	o.yield(w.be.name() + " " + what)
	w.srcDirty = true
	if w.downAll || (o.node != nil && o.node.down) {
		return errUnreachable
	}
	return nil
}

// applyCfg changes node n's configuration for the operations started
// from now on (as a new CNI configuration file would).
func applyCfg(n *node, kv string) error {
	k, v, _ := strings.Cut(kv, "=")
	c := n.cfg
	c.Subnets = slices.Clone(c.Subnets)
	switch k {
	case "blockSize":
		b, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("cfg %s: %w", kv, err)
		}
		c.BlockSize = b
	case "exclude":
		c.Exclude = nil
		if v != "" {
			p, err := netip.ParsePrefix(v)
			if err != nil {
				return fmt.Errorf("cfg %s: %w", kv, err)
			}
			c.Exclude = []netip.Prefix{p}
		}
	case "sticky":
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("cfg %s: %w", kv, err)
		}
		c.Sticky = d
	case "gateway":
		a, err := netip.ParseAddr(v)
		if err != nil {
			return fmt.Errorf("cfg %s: %w", kv, err)
		}
		c.Subnets[0].Gateway = a
	default:
		return fmt.Errorf("cfg %s: unknown key", kv)
	}
	if err := c.Validate(); err != nil {
		return err
	}
	n.cfg = c
	return nil
}
