package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/medianet/medianet/ipam"
	"github.com/medianet/medianet/ipam/etcdstore"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Violation is a broken invariant.
type Violation struct {
	Kind   string // live-twice, usable-twice, unaccounted, drain-store, drain-etcd, status-wrote, check-corrupt, yield-in-tx, panic, stuck, sim
	Detail string
	Step   int // 1-based index of the step after which it was found
}

func (v *Violation) Error() string {
	return fmt.Sprintf("%s after step %d: %s", v.Kind, v.Step, v.Detail)
}

// violate records the first violation of the run.
func (w *World) violate(kind, detail string) {
	if w.violation == nil {
		w.violation = &Violation{Kind: kind, Detail: detail, Step: w.steps}
	}
}

// storeState is what the invariants need of one node's store.
type storeState struct {
	gen    int
	allocs []ipam.Allocation
	blocks []ipam.Block
}

// etcdState is the network's keys in etcd, decoded.
type etcdState struct {
	claims  map[netip.Prefix]etcdstore.Claim
	bound   map[netip.Addr]string // address -> node a sticky record binds it to
	twice   string                // an address two records bind, if any
	sticky  map[string]stickyRec  // workload/ifname -> record
	residue []string              // every key below the network but its config
}

type stickyRec struct {
	Node string       `json:"node"`
	IPs  []netip.Addr `json:"ips"`
	Hold bool         `json:"hold"`
}

func (w *World) netPrefix() string { return w.prefix + "/networks/" + Network + "/" }

// revision returns etcd's current revision (0 when etcd does not answer).
func (w *World) revision() int64 {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := w.raw.Get(ctx, w.prefix+"/revision-probe")
	if err != nil {
		return 0
	}
	return resp.Header.Revision
}

func (w *World) readEtcd() (*etcdState, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pfx := w.netPrefix()
	resp, err := w.raw.Get(ctx, pfx, clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	es := &etcdState{claims: map[netip.Prefix]etcdstore.Claim{}, bound: map[netip.Addr]string{}, sticky: map[string]stickyRec{}}
	heldBy := map[netip.Addr]bool{}
	for _, kv := range resp.Kvs {
		k := strings.TrimPrefix(string(kv.Key), pfx)
		if k == "config" {
			continue
		}
		es.residue = append(es.residue, k+" = "+string(kv.Value))
		switch kind, rest, _ := strings.Cut(k, "/"); kind {
		case "blocks":
			i := strings.LastIndexByte(rest, '-')
			p, err := netip.ParsePrefix(rest[:max(i, 0)] + "/" + rest[i+1:])
			var cl etcdstore.Claim
			if err == nil && json.Unmarshal(kv.Value, &cl) == nil {
				es.claims[p] = cl
			}
		case "sticky":
			var r stickyRec
			if json.Unmarshal(kv.Value, &r) == nil {
				es.sticky[rest] = r
				for _, ip := range r.IPs {
					// Two records binding one address to two nodes, or
					// holding it twice (either may move to another
					// node), are a violation. A live record and another
					// on the same node are not: a workload live twice on
					// a node can leave its live record over an address
					// the node then reuses, which nothing can move and
					// its sync removes.
					other, dup := es.bound[ip]
					if dup && (other != r.Node || r.Hold && heldBy[ip]) {
						es.twice = fmt.Sprintf("%s is bound by two sticky records to %s and %s (one is %s)", ip, other, r.Node, rest)
					}
					es.bound[ip] = r.Node
					heldBy[ip] = heldBy[ip] || r.Hold
				}
			}
		}
	}
	return es, nil
}

func (w *World) readStore(n *node) (*storeState, error) {
	if s := w.stores[n.idx]; s != nil && s.gen == n.storeGen {
		return s, nil
	}
	s := &storeState{gen: n.storeGen}
	err := n.bolt.View(context.Background(), func(tx ipam.Tx) error {
		if err := tx.ForEachAllocation(Network, func(a ipam.Allocation) error {
			s.allocs = append(s.allocs, a)
			return nil
		}); err != nil {
			return err
		}
		return tx.ForEachBlock(Network, func(b ipam.Block) error {
			s.blocks = append(s.blocks, b)
			return nil
		})
	})
	w.stores[n.idx] = s
	return s, err
}

// checkInvariants checks, after a step, what must hold at every step.
func (w *World) checkInvariants() {
	if w.violation != nil {
		return
	}
	if w.etcdDirty || w.snap == nil {
		es, err := w.readEtcd()
		if err != nil {
			w.violate("sim", "read etcd: "+err.Error())
			return
		}
		w.snap, w.etcdDirty = es, false
	}
	if w.snap.twice != "" {
		w.violate("bound-twice", w.snap.twice)
		return
	}
	live := map[netip.Addr]string{}   // address -> node/container
	usable := map[netip.Addr]string{} // address -> node
	for _, n := range w.nodes {
		if n.dead {
			continue
		}
		ss, err := w.readStore(n)
		if err != nil {
			w.violate("sim", fmt.Sprintf("read store of %s: %v", n.name, err))
			return
		}
		owner := map[netip.Addr]ipam.Allocation{}
		for _, a := range ss.allocs {
			for _, ip := range a.IPs {
				owner[ip] = a
			}
			if a.IsReservation() {
				continue
			}
			for _, ip := range a.IPs {
				who := n.name + "/" + a.ContainerID
				if other, dup := live[ip]; dup {
					w.violate("live-twice", fmt.Sprintf("%s is live on %s and on %s", ip, other, who))
					return
				}
				live[ip] = who
				if !w.snap.accounts(n.name, ip) {
					w.violate("unaccounted", fmt.Sprintf("%s live on %s is neither bound to %s by a sticky record nor, unbound, in a block etcd says is its", ip, who, n.name))
					return
				}
			}
		}
		for _, b := range ss.blocks {
			if !b.Usable() {
				continue
			}
			for i := range b.Len() {
				if b.IsReserved(i) {
					continue
				}
				ip := b.Addr(i)
				if b.IsUsed(i) {
					a, ok := owner[ip]
					switch {
					case !ok:
						continue // CHECK's business (corruption)
					case a.IsHold():
						if !w.snap.holdIs(n.name, a) {
							continue // a hold etcd says moved away: the node must ask before taking it
						}
					case a.IsReservation():
						continue
					}
				}
				if other, dup := usable[ip]; dup && other != n.name {
					w.violate("usable-twice", fmt.Sprintf("%s is usable by %s and by %s (%s)", ip, other, n.name, describeUse(b, i, owner)))
					return
				}
				usable[ip] = n.name
			}
		}
	}
}

func describeUse(b ipam.Block, i int, owner map[netip.Addr]ipam.Allocation) string {
	ip := b.Addr(i)
	if a, ok := owner[ip]; ok && b.IsUsed(i) {
		return fmt.Sprintf("owned there by %s/%s in block %s", a.ContainerID, a.IfName, b.Prefix)
	}
	return fmt.Sprintf("free there in block %s", b.Prefix)
}

// accounts reports whether etcd says ip is node's: a sticky record binds
// it to node, or none binds it and the claim of a block holding it names
// node (docs/design.md, "Sticky addresses").
func (es *etcdState) accounts(node string, ip netip.Addr) bool {
	if n, ok := es.bound[ip]; ok {
		return n == node
	}
	for p, cl := range es.claims {
		if p.Contains(ip) && cl.Node == node {
			return true
		}
	}
	return false
}

// holdIs reports whether etcd says hold h is still node's to hand back:
// its workload's record names node, or without a record every address
// is node's (accounts).
func (es *etcdState) holdIs(node string, h ipam.Allocation) bool {
	if r, ok := es.sticky[h.Workload+"/"+h.IfName]; ok {
		return r.Node == node && slices.Equal(r.IPs, h.IPs)
	}
	return !slices.ContainsFunc(h.IPs, func(ip netip.Addr) bool { return !es.accounts(node, ip) })
}
