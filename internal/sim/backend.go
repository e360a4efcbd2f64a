package sim

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/medianet/medianet/ipam"
)

// backend is the cluster store a world's nodes claim their blocks in:
// etcd (etcdstore, etcd.go) or the Kubernetes API (kubestore, kube.go).
// Its clients call World.hook before every request an operation makes,
// so that every request is a yield point and can fail as unreachable.
type backend interface {
	// name is the source's name in messages and violation kinds.
	name() string
	// caps says which operations and faults the source supports.
	caps() caps
	// source returns the block source of one operation (one CNI process
	// or agent pass) of a node with configuration cfg over store st, and
	// the agent's sync of it.
	source(cfg *ipam.Config, st ipam.Store) (ipam.BlockSource, syncFunc, error)
	// reclaim is the operator's reclaim of the lost node named node (s
	// says how); done reports whether nothing of it was left behind.
	reclaim(ctx context.Context, node string, s Step) (done bool, err error)
	// lose is what the cluster does itself when a node is lost for good.
	lose(node string) error
	// read returns what the source records of the network, read without
	// the hook.
	read() (*clusterState, error)
	// stamp changes whenever the source's records of the network change
	// ("" when it cannot be read): STATUS must leave it as it was.
	stamp() string
	close()
}

// syncFunc is the node agent's sync of a source (SyncIdle).
type syncFunc func(ctx context.Context, st ipam.Store, now time.Time) error

// syncOf is a source's SyncIdle as a syncFunc, whatever it reports.
func syncOf[R any](syncIdle func(context.Context, ipam.Store, time.Time) (R, error)) syncFunc {
	return func(ctx context.Context, st ipam.Store, now time.Time) error {
		_, err := syncIdle(ctx, st, now)
		return err
	}
}

// caps are what a world's source supports; the generator draws only
// operations and faults within them.
type caps struct {
	// Sticky: the network has a sticky period and may change it.
	Sticky bool
	// BlockSizeChange: a node's blockSize may change on a live network.
	BlockSizeChange bool
	// Foreign: a forced reclaim leaves reservations (foreign:NODE) on
	// the nodes that take the dead node's blocks, which the operator
	// releases once the node is known gone.
	Foreign bool
	// ReclaimGone: the source can reclaim the blocks of nodes whose Node
	// object is gone (reclaim ... gone), and a lost node's Node object
	// is deleted.
	ReclaimGone bool
}

// clusterState is what the invariants need of the source's records,
// whichever source keeps them: who claims each block, and which node a
// sticky record binds an address to.
type clusterState struct {
	claims  map[netip.Prefix]string // block -> claiming node
	bound   map[netip.Addr]string   // address -> node a sticky record binds it to
	heldBy  map[netip.Addr]bool     // a held record binds the address
	twice   string                  // an address two records bind, if any
	sticky  map[string]stickyRec    // workload/ifname -> record
	residue []string                // every record of the network but its configuration
}

type stickyRec struct {
	Node string       `json:"node"`
	IPs  []netip.Addr `json:"ips"`
	Hold bool         `json:"hold"`
}

func newClusterState() *clusterState {
	return &clusterState{claims: map[netip.Prefix]string{}, bound: map[netip.Addr]string{},
		heldBy: map[netip.Addr]bool{}, sticky: map[string]stickyRec{}}
}

// addSticky records the sticky record of key (workload/ifname).
func (cs *clusterState) addSticky(key string, r stickyRec) {
	cs.sticky[key] = r
	for _, ip := range r.IPs {
		// Two records binding one address to two nodes, or holding it
		// twice (either may move to another node), are a violation. A
		// live record and another on the same node are not: a workload
		// live twice on a node can leave its live record over an
		// address the node then reuses, which nothing can move and its
		// sync removes.
		other, dup := cs.bound[ip]
		if dup && (other != r.Node || r.Hold && cs.heldBy[ip]) {
			cs.twice = fmt.Sprintf("%s is bound by two sticky records to %s and %s (one is %s)", ip, other, r.Node, key)
		}
		cs.bound[ip] = r.Node
		cs.heldBy[ip] = cs.heldBy[ip] || r.Hold
	}
}

// accounts reports whether the source says ip is node's: a sticky record
// binds it to node, or none binds it and the claim of a block holding it
// names node (docs/design.md, "Sticky addresses").
func (cs *clusterState) accounts(node string, ip netip.Addr) bool {
	if n, ok := cs.bound[ip]; ok {
		return n == node
	}
	for p, claimant := range cs.claims {
		if p.Contains(ip) && claimant == node {
			return true
		}
	}
	return false
}

// holdIs reports whether the source says hold h is still node's to hand
// back: its workload's record names node, or without a record every
// address is node's (accounts).
func (cs *clusterState) holdIs(node string, h ipam.Allocation) bool {
	if r, ok := cs.sticky[h.Workload+"/"+h.IfName]; ok {
		return r.Node == node && slices.Equal(r.IPs, h.IPs)
	}
	return !slices.ContainsFunc(h.IPs, func(ip netip.Addr) bool { return !cs.accounts(node, ip) })
}
