package sim

import (
	"fmt"
	"strings"
	"time"

	"github.com/medianet/medianet/ipam"
)

// finishAll runs every operation in flight to its end, lowest ID first.
func (w *World) finishAll() {
	for {
		var next *op
		pending := 0
		for _, id := range w.opIDs() {
			o := w.ops[id]
			if o.done {
				continue
			}
			pending++
			if next == nil && o.runnable() {
				next = o
			}
		}
		if pending == 0 {
			return
		}
		if next == nil {
			w.violate("stuck", fmt.Sprintf("%d operations wait and none can move (claim lock never released?)", pending))
			for _, id := range w.opIDs() {
				if o := w.ops[id]; !o.done {
					w.advance(o, false)
				}
			}
			return
		}
		w.advance(next, true)
		w.checkInvariants()
	}
}

// runToEnd starts an operation of the drain and runs it to its end.
func (w *World) runToEnd(s Step) {
	w.drainOp++
	s.Op = w.drainOp
	w.startOp(s)
	w.checkInvariants()
	w.finishAll()
}

// drain ends a run the way an operator empties a cluster: every
// operation finishes, the source is reachable, the runtimes delete every
// container they know, the sticky and idle periods pass while the node
// agents sync, and lost nodes are reclaimed (and the reservations other
// nodes keep for them released). Then every store and the source's
// records, but for the network's configuration (etcd's config key, the
// IPAMNetwork), must be empty; what still names a lost node is left out
// (a forced reclaim in etcd keeps a dead node's tombstones).
func (w *World) drain() {
	w.finishAll()
	w.downAll = false
	for _, n := range w.nodes {
		n.down = false
	}
	for _, n := range w.nodes {
		for _, cid := range sortedKeys(n.known) {
			w.runToEnd(Step{Kind: "del", Node: n.idx, CID: cid})
		}
	}
	for _, n := range w.nodes {
		if n.dead && !n.reclaimed {
			w.runToEnd(Step{Kind: "reclaim", Node: n.idx, Force: true})
		}
	}
	// Having checked they are gone, the operator ends the reservations
	// other nodes keep for them (taken over with their tombstones).
	for _, d := range w.nodes {
		if !d.dead || !w.be.caps().Foreign {
			continue
		}
		for _, n := range w.nodes {
			if !n.dead {
				w.runToEnd(Step{Kind: "release", Node: n.idx, CID: ipam.ForeignPrefix + d.name})
			}
		}
	}
	// Periods pass while the agents sync, round after round, until
	// nothing is left (each node follows the others' records one sync
	// later: a chain of moves takes a round per hop), at most drainRounds.
	for range drainRounds {
		w.now = w.now.Add(Sticky + IdleRelease + time.Minute)
		for _, n := range w.nodes {
			w.runToEnd(Step{Kind: "sync", Node: n.idx})
		}
		if w.violation != nil || w.drained() {
			break
		}
	}
	if w.violation != nil {
		return
	}
	w.checkDrained()
}

// drainRounds bounds the sync rounds of a drain.
const drainRounds = 8

// drained reports whether every live node's store and the source's
// records (but the network's configuration and what names a lost node)
// are empty.
func (w *World) drained() bool {
	for _, n := range w.nodes {
		if n.dead {
			continue
		}
		ss, err := w.readStore(n)
		if err != nil || len(ss.allocs) > 0 || len(ss.blocks) > 0 {
			return false
		}
	}
	cs, err := w.be.read()
	if err != nil {
		return false
	}
	for _, r := range cs.residue {
		if !w.namesDead(r) {
			return false
		}
	}
	return true
}

// checkDrained reports what a drain left.
func (w *World) checkDrained() {
	for _, n := range w.nodes {
		if n.dead {
			continue
		}
		ss, err := w.readStore(n)
		if err != nil {
			w.violate("sim", err.Error())
			return
		}
		var left []string
		for _, a := range ss.allocs {
			left = append(left, fmt.Sprintf("allocation %s/%s %v (workload %q)", a.ContainerID, a.IfName, a.IPs, a.Workload))
		}
		for _, b := range ss.blocks {
			left = append(left, fmt.Sprintf("block %s (used %v, lost %q)", b.Prefix, b.Used, b.Lost))
		}
		if len(left) > 0 {
			w.violate("drain-store", fmt.Sprintf("node %s keeps after the drain: %s", n.name, strings.Join(left, "; ")))
			return
		}
	}
	cs, err := w.be.read()
	if err != nil {
		w.violate("sim", err.Error())
		return
	}
	var left []string
	for _, r := range cs.residue {
		if !w.namesDead(r) {
			left = append(left, r)
		}
	}
	if len(left) > 0 {
		w.violate("drain-"+w.be.name(), w.be.name()+" keeps after the drain: "+strings.Join(left, "; "))
	}
}

// namesDead reports whether a residue line of the source names a lost
// node (as a JSON string, or as the last element of an etcd key).
func (w *World) namesDead(r string) bool {
	for _, n := range w.nodes {
		if n.dead && (strings.Contains(r, `"`+n.name+`"`) || strings.Contains(r, "/"+n.name+" ")) {
			return true
		}
	}
	return false
}
