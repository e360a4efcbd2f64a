package soak

import (
	"time"
)

// Final phase bounds.
const (
	maxDelRounds = 20
	// drainWait bounds how long the drain waits for holds to expire and
	// empty blocks to be given back: the sticky period (15 s) plus
	// idleRelease (5 s), with room for a loaded machine.
	drainWait = 3 * time.Minute
)

// final heals every fault, lets the runtime finish its DELs and run GC,
// and checks that no allocation is left that no live container explains.
// Then it deletes every container and waits until holds expire and empty
// blocks are given back: the stores and etcd must end empty.
func (s *soak) final() {
	s.step++
	s.finishFaults()
	s.settleDying(opDelRetry)
	for i := range s.nodes {
		s.runSettled(&op{kind: opSync, node: i, net: "every network"})
	}
	for i := range s.nodes {
		for _, net := range netNames {
			s.runSettled(&op{kind: opGC, node: i, net: net, valid: s.model.live(i, net)})
		}
	}
	s.checkInvariants()
	s.fig.leaks, s.fig.reservations = leaks(s.last, s.model.live(-1, ""))
	if len(s.fig.leaks) > 0 {
		s.fail("%d allocations leaked once the runtime's DELs and GC ran:\n  %s", len(s.fig.leaks), joinLines(s.fig.leaks))
	}
	s.drain()
}

// settleDying repeats DEL (of kind) for every dying container until it
// succeeds.
func (s *soak) settleDying(kind string) {
	for round := 0; len(s.model.dying()) > 0; round++ {
		if round == maxDelRounds {
			s.fail("containers still dying after %d rounds of DEL: %v", round, s.model.dying())
		}
		var ops []*op
		for _, c := range s.model.dying() {
			ops = append(ops, &op{kind: kind, node: c.node, net: c.net, c: c, netns: missingNetns})
		}
		s.run(ops)
		for _, o := range ops {
			s.settle(o)
		}
	}
}

// runSettled runs one operation alone and settles it.
func (s *soak) runSettled(o *op) {
	s.run([]*op{o})
	s.settle(o)
}

// drain deletes every live container, then runs every node's sync and
// GC until nothing is left: no allocation (holds expired), no etcd block
// held, no claim in etcd.
func (s *soak) drain() {
	s.step++
	s.logf("drain: deleting every container")
	for _, c := range s.model.live(-1, "") {
		c.dying = true
	}
	s.settleDying(opDel)
	start := time.Now()
	for {
		for i := range s.nodes {
			s.runSettled(&op{kind: opSync, node: i, net: "every network"})
			for _, net := range netNames {
				s.runSettled(&op{kind: opGC, node: i, net: net})
			}
		}
		s.checkInvariants()
		left := s.leftovers()
		if len(left) == 0 {
			s.fig.drain, s.fig.drained = time.Since(start), true
			s.logf("drain: empty after %v", s.fig.drain)
			return
		}
		if time.Since(start) > drainWait {
			s.logState(s.last)
			s.fail("drain: still held %v after every container was deleted:\n  %s", drainWait, joinLines(left))
		}
		time.Sleep(2 * time.Second)
	}
}

// leftovers lists what the drain waits for.
func (s *soak) leftovers() []string {
	var left []string
	for _, n := range s.last.nodes {
		for _, net := range netNames {
			for _, a := range n.allocs[net] {
				left = append(left, "node "+n.name+" "+net+" allocation "+holder{n.name, a}.String())
			}
		}
		for _, b := range n.blocks[etcdNet] {
			left = append(left, "node "+n.name+" holds block "+b.Prefix.String())
		}
	}
	for _, c := range s.last.claims {
		left = append(left, "etcd claim "+c.Block.String()+" of node "+c.Claim.Node)
	}
	return left
}
