package soak

import (
	"math"
	"net/netip"
	"time"

	"github.com/medianet/medianet/ipam"
)

// Step mix. A step is GC alone or STATUS alone (a runtime never runs GC
// beside ADD or DEL), or up to three operations at once plus up to two of
// the runtime's DEL retries.
const (
	gcRate      = 0.07
	statusRate  = 0.07
	syncRate    = 0.10 // of the other operations
	delTwice    = 0.05
	killRate    = 0.12 // operations killed midway
	requestRate = 0.12 // ADDs asking for an address (CNI_ARGS IP=)
	podRate     = 0.6  // ADDs on the etcd (sticky) network naming a pod
	maxRetries  = 2
)

// Live containers a node keeps per network, at most. The target
// occupancy swings between about half and all of it every occupancyPeriod,
// so that blocks fill up (claims, exhaustion) and empty (give-backs).
var capacity = map[string]int{etcdNet: 30, staticNet: 50}

const occupancyPeriod = 150 * time.Second

func (s *soak) plan() []*op {
	switch r := s.rng.Float64(); {
	case r < gcRate:
		node, net := s.rng.IntN(len(s.nodes)), netNames[s.rng.IntN(2)]
		return []*op{s.withKill(&op{kind: opGC, node: node, net: net, valid: s.model.live(node, net)})}
	case r < gcRate+statusRate:
		return []*op{s.withKill(&op{kind: opStatus, node: s.rng.IntN(len(s.nodes)), net: netNames[s.rng.IntN(2)]})}
	}
	busy := map[string]bool{}
	var ops []*op
	for _, c := range s.model.dying() {
		if len(ops) == maxRetries {
			break
		}
		ops = append(ops, s.delOp(c, opDelRetry))
		busy[c.id] = true
	}
	for range 1 + s.rng.IntN(3) {
		if o := s.planOne(busy); o != nil {
			ops = append(ops, o)
		}
	}
	return ops
}

// planOne picks one operation on a random node and network.
func (s *soak) planOne(busy map[string]bool) *op {
	node, net := s.rng.IntN(len(s.nodes)), netNames[s.rng.IntN(2)]
	r := s.rng.Float64()
	switch {
	case r < syncRate:
		return s.withKill(&op{kind: opSync, node: node, net: "every network"})
	case r < syncRate+delTwice && len(s.model.gone) > 0:
		c := s.model.gone[s.rng.IntN(len(s.model.gone))]
		if busy[c.id] {
			return nil
		}
		busy[c.id] = true
		return s.delOp(c, opDelTwice)
	}
	live := s.model.live(node, net)
	if s.rng.Float64() < s.addChance(len(live), capacity[net]) {
		return s.addOp(node, net, busy)
	}
	var free []*container
	for _, c := range live {
		if !busy[c.id] {
			free = append(free, c)
		}
	}
	if len(free) == 0 {
		return nil
	}
	c := free[s.rng.IntN(len(free))]
	busy[c.id] = true
	c.dying = true // from now on the runtime wants it gone
	return s.delOp(c, opDel)
}

// addChance is the chance of an ADD rather than a DEL, steering the
// node's live count toward the swinging target.
func (s *soak) addChance(live, capacity int) float64 {
	phase := 2 * math.Pi * time.Since(s.start).Seconds() / occupancyPeriod.Seconds()
	target := float64(capacity) * (0.55 + 0.45*math.Sin(phase))
	return min(0.9, max(0.1, 0.5+(target-float64(live))/float64(capacity)))
}

func (s *soak) addOp(node int, net string, busy map[string]bool) *op {
	c := s.model.newContainer(node, net)
	o := &op{kind: opAdd, node: node, net: net, c: c, netns: missingNetns}
	switch {
	case net == etcdNet && s.rng.Float64() < podRate:
		c.workload = s.model.freePod(s.rng, busy)
	case net == staticNet && s.rng.IntN(3) == 0:
		c.workload = "soak/web-" + c.id
	}
	busy[c.workload] = true
	if s.rng.Float64() < requestRate {
		o.want = s.pickRequest(node, net)
	}
	return s.withKill(o)
}

// pickRequest returns an address for an ADD to ask for: one a live
// container holds (the ADD must fail), one of the node's own blocks
// (free or not), or any address of the subnet.
func (s *soak) pickRequest(node int, net string) netip.Addr {
	spec := s.nodes[node].specs[net]
	switch s.rng.IntN(3) {
	case 0:
		if live := s.model.live(-1, net); len(live) > 0 {
			return live[s.rng.IntN(len(live))].ip
		}
	case 1:
		if bs := s.last.nodes[node].blocks[net]; len(bs) > 0 {
			b := bs[s.rng.IntN(len(bs))]
			return b.Addr(s.rng.IntN(b.Len()))
		}
	}
	a, _ := ipam.Offset(spec.Subnet.Addr(), s.rng.Uint64N(ipam.Size(spec.Subnet)))
	return a
}

func (s *soak) delOp(c *container, kind string) *op {
	o := &op{kind: kind, node: c.node, net: c.net, c: c, netns: missingNetns}
	if s.rng.IntN(2) == 0 {
		o.netns = "" // the sandbox's namespace is gone already
	}
	if kind == opDelTwice {
		return o
	}
	return s.withKill(o)
}

// withKill makes o one of the operations killed midway, sometimes: after
// a random delay within its usual duration.
func (s *soak) withKill(o *op) *op {
	if s.rng.Float64() >= killRate {
		return o
	}
	o.kill = killGroup
	if s.rng.IntN(5) < 2 {
		o.kill = killParent
	}
	pace := s.pace[o.kind]
	if pace == 0 {
		pace = 100 * time.Millisecond
	}
	o.delay = time.Duration(s.rng.Float64() * 1.3 * float64(pace))
	return o
}

// observePace keeps a moving average of each kind's duration.
func (s *soak) observePace(o *op) {
	if o.kill != killNone {
		return
	}
	if p := s.pace[o.kind]; p == 0 {
		s.pace[o.kind] = o.took
	} else {
		s.pace[o.kind] = (9*p + o.took) / 10
	}
}

// stickyExpect returns the address an ADD of a pod should get back: its
// hold on this node, well before expiry, in a usable block and not
// reserved now (as of the previous step's state); else the zero Addr.
func (s *soak) stickyExpect(o *op) netip.Addr {
	if o.kind != opAdd || o.c.workload == "" || o.net != etcdNet || o.want.IsValid() {
		return netip.Addr{}
	}
	ns := s.last.nodes[o.node]
	for _, a := range ns.allocs[etcdNet] {
		if a.Key != ipam.HoldKey(etcdNet, o.c.workload, ifName) || len(a.IPs) != 1 || time.Until(a.HeldUntil) < 3*time.Second {
			continue
		}
		ip := a.IPs[0]
		if s.nodes[o.node].specs[etcdNet].reserved(ip) {
			return netip.Addr{}
		}
		for _, b := range ns.blocks[etcdNet] {
			if b.Prefix.Contains(ip) && b.Usable() {
				return ip
			}
		}
	}
	return netip.Addr{}
}
