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
	"github.com/medianet/medianet/ipam/etcdstore"
	clientv3 "go.etcd.io/etcd/client/v3"
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
	// errUnreachable is what the etcd hook returns while etcd is down for
	// the calling node.
	errUnreachable = errors.New("etcd unreachable (simulated)")
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
	etcdDown  bool
	claimBusy bool // the claim lock is held (by an operation parked with it)
	storeGen  int  // bumped by every committed Update
	known     map[string]*container
}

// container is the runtime's view of one container of a node.
type container struct {
	workload string
	state    string // adding, live, failed (the runtime still owes a DEL), deleting
}

// World is one run's cluster: nodes, etcd (under a prefix of its own),
// the fake clock and the operations in flight.
type World struct {
	raw    *clientv3.Client // unhooked, for the invariants
	cli    *etcdstore.Client
	prefix string
	dir    string
	nodes  []*node
	ops    map[int]*op
	now    time.Time
	// downAll: etcd unreachable for every node.
	downAll bool

	etcdDirty bool
	snap      *etcdState
	stores    map[int]*storeState
	violation *Violation
	steps     int // steps applied
	// noop marks the steps applied so far that changed nothing (an
	// operation already ended, a node already lost), for Shrink.
	noop    []bool
	drainOp int
}

// newWorld makes a world of n nodes with stores under base (a fresh
// directory of its own) and etcd keys under a fresh prefix.
func newWorld(endpoints []string, raw *clientv3.Client, base string, n int) (*World, error) {
	seq := worldSeq.Add(1)
	dir, err := os.MkdirTemp(base, "world-")
	if err != nil {
		return nil, err
	}
	w := &World{raw: raw, dir: dir, ops: map[int]*op{}, now: epoch, stores: map[int]*storeState{}, drainOp: 1 << 30,
		prefix: fmt.Sprintf("/sim/%d-%d", os.Getpid(), seq), etcdDirty: true}
	w.cli, err = etcdstore.New(etcdstore.Config{
		Endpoints: endpoints, Prefix: w.prefix, RequestTimeout: time.Hour, IdleRelease: IdleRelease,
		Now: func() time.Time { return w.now }, Hook: w.hook,
	})
	if err != nil {
		return nil, err
	}
	for i := range n {
		name := nodeName(i)
		st, err := boltstore.Open(context.Background(), filepath.Join(dir, name), boltstore.Options{NoSync: true})
		if err != nil {
			return nil, err
		}
		w.nodes = append(w.nodes, &node{idx: i, name: name, bolt: st, known: map[string]*container{},
			cfg: ipam.Config{Network: Network, Subnets: []ipam.Subnet{{Prefix: subnet}}, BlockSize: 28, Node: name, Sticky: Sticky}})
	}
	return w, nil
}

// close ends every operation still parked (as killed processes), and
// removes the world's stores and etcd keys.
func (w *World) close() {
	for _, id := range w.opIDs() {
		if o := w.ops[id]; !o.done {
			o.resume <- false
			<-o.park
		}
	}
	w.cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _ = w.raw.Delete(ctx, w.prefix+"/", clientv3.WithPrefix())
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

// hook is etcdstore.Config.Hook: a yield point before every etcd
// request of an operation, then etcd reachable or not for its node.
func (w *World) hook(ctx context.Context, what string) error {
	o, _ := ctx.Value(opKey{}).(*op)
	if o == nil {
		return nil
	}
	o.yield("etcd " + what)
	w.etcdDirty = true
	if w.downAll || (o.node != nil && o.node.etcdDown) {
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
