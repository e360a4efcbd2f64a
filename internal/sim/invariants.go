package sim

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/medianet/medianet/ipam"
)

// Violation is a broken invariant.
type Violation struct {
	Kind   string // live-twice, usable-twice, unaccounted, bound-twice, drain-store, drain-etcd or drain-kube, status-wrote, check-corrupt, yield-in-tx, panic, stuck, sim
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
	if w.srcDirty || w.snap == nil {
		cs, err := w.be.read()
		if err != nil {
			w.violate("sim", "read "+w.be.name()+": "+err.Error())
			return
		}
		w.snap, w.srcDirty = cs, false
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
					w.violate("unaccounted", fmt.Sprintf("%s live on %s is neither bound to %s by a sticky record nor, unbound, in a block %s says is its", ip, who, n.name, w.be.name()))
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
							continue // a hold the source says moved away: the node must ask before taking it
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
