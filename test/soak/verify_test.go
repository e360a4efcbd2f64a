package soak

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/medianet/medianet/ipam"
)

// The invariants checked after every step, over one clusterState. Each
// check returns what it found wrong, one line per violation; the soak
// fails on any.

// expect is what the soak's model says the cluster must be.
type expect struct {
	specs  []map[string]netSpec // per node: its current configuration
	live   []*container         // live containers (the model's)
	absent []*container         // ADDs that failed: nothing may be allocated for them
}

// invariant names, as the figures count them.
var invariants = []string{"medianetctl check", "duplicates", "model", "failed ADD left nothing",
	"block overlap", "etcd claims", "address usable twice", "reserved-in-use reported"}

// verify runs every check over cs; count gets one per check passed.
func verify(cs *clusterState, e expect, count func(string)) []string {
	var bad []string
	for _, c := range []struct {
		name string
		fn   func() []string
	}{
		{"duplicates", func() []string { return checkDuplicates(cs) }},
		{"model", func() []string { return checkModel(cs, e.live) }},
		{"failed ADD left nothing", func() []string { return checkAbsent(cs, e.absent) }},
		{"block overlap", func() []string { return checkOverlap(cs) }},
		{"etcd claims", func() []string { return checkClaims(cs) }},
		{"address usable twice", func() []string { return checkUsableTwice(cs) }},
		{"reserved-in-use reported", func() []string { return checkReservedReported(cs, e) }},
	} {
		if b := c.fn(); len(b) > 0 {
			bad = append(bad, b...)
		} else {
			count(c.name)
		}
	}
	return bad
}

// holder is an allocation and the node whose store has it.
type holder struct {
	node string
	a    ipam.Allocation
}

func (h holder) String() string {
	s := fmt.Sprintf("%s:%s/%s", h.node, h.a.ContainerID, h.a.IfName)
	if h.a.Workload != "" {
		s += fmt.Sprintf(" (workload %q)", h.a.Workload)
	}
	return s
}

// checkDuplicates: per network, no address is held by two live
// attachments across every node's store, and a sticky hold's address is
// held by nothing of another workload. Foreign and moved reservations
// (an address kept for the node using it) are left out: they are the
// second half of a move.
func checkDuplicates(cs *clusterState) []string {
	var bad []string
	for _, net := range netNames {
		by := map[netip.Addr][]holder{}
		for _, n := range cs.nodes {
			for _, a := range n.allocs[net] {
				if a.IsReservation() && !a.IsHold() {
					continue
				}
				for _, ip := range a.IPs {
					by[ip] = append(by[ip], holder{n.name, a})
				}
			}
		}
		for _, ip := range slices.SortedFunc(maps.Keys(by), netip.Addr.Compare) {
			hs := by[ip]
			if len(hs) < 2 {
				continue
			}
			live, workloads := 0, map[string]bool{}
			for _, h := range hs {
				if !h.a.IsHold() {
					live++
				}
				workloads[h.a.Workload] = true
			}
			if live > 1 || len(workloads) > 1 {
				bad = append(bad, fmt.Sprintf("network %s: address %s held by %v", net, ip, hs))
			}
		}
	}
	return bad
}

// checkModel: every live container's allocation is in its node's store,
// with the address its ADD returned; no two live containers share one.
func checkModel(cs *clusterState, live []*container) []string {
	var bad []string
	seen := map[string]*container{}
	for _, c := range live {
		k := c.net + " " + c.ip.String()
		if o, dup := seen[k]; dup {
			bad = append(bad, fmt.Sprintf("live containers %s (node %s) and %s (node %s) were both given %s",
				o, cs.nodes[o.node].name, c, cs.nodes[c.node].name, c.ip))
		}
		seen[k] = c
		n := cs.nodes[c.node]
		a, ok := findAlloc(n.allocs[c.net], c.id)
		switch {
		case !ok:
			bad = append(bad, fmt.Sprintf("node %s lost the allocation of live container %s", n.name, c))
		case !slices.Equal(a.IPs, []netip.Addr{c.ip}):
			bad = append(bad, fmt.Sprintf("node %s: live container %s holds %v in the store", n.name, c, a.IPs))
		}
	}
	return bad
}

// checkAbsent: an ADD that failed (not killed) allocated nothing.
func checkAbsent(cs *clusterState, absent []*container) []string {
	var bad []string
	for _, c := range absent {
		if a, ok := findAlloc(cs.nodes[c.node].allocs[c.net], c.id); ok {
			bad = append(bad, fmt.Sprintf("node %s: failed ADD of %s left an allocation of %v", cs.nodes[c.node].name, c, a.IPs))
		}
	}
	return bad
}

func findAlloc(as []ipam.Allocation, id string) (ipam.Allocation, bool) {
	for _, a := range as {
		if a.ContainerID == id && a.IfName == ifName {
			return a, true
		}
	}
	return ipam.Allocation{}, false
}

// nodeBlock is a held block and the node holding it.
type nodeBlock struct {
	node string
	b    ipam.Block
}

// checkOverlap: the usable blocks of several addresses that nodes hold
// never overlap (the static network's held blocks, lost or not, never
// do). Single-address blocks (a sticky address moved to a node) are
// checked by checkUsableTwice.
func checkOverlap(cs *clusterState) []string {
	var bad []string
	for _, net := range netNames {
		var bs []nodeBlock
		for _, n := range cs.nodes {
			for _, b := range n.blocks[net] {
				if !b.IsBound() && (b.Usable() || net == staticNet) {
					bs = append(bs, nodeBlock{n.name, b})
				}
			}
		}
		for i := range bs {
			for j := i + 1; j < len(bs); j++ {
				if bs[i].b.Prefix.Overlaps(bs[j].b.Prefix) {
					bad = append(bad, fmt.Sprintf("network %s: block %s of node %s overlaps block %s of node %s",
						net, bs[i].b.Prefix, bs[i].node, bs[j].b.Prefix, bs[j].node))
				}
			}
		}
	}
	return bad
}

// checkClaims (when etcd answered): claims never overlap, whatever their
// sizes, and every usable block of several addresses a node holds in the
// etcd network is claimed by that node.
func checkClaims(cs *clusterState) []string {
	if !cs.claimsRead {
		return nil
	}
	var bad []string
	owner := map[netip.Prefix]string{}
	for i, c := range cs.claims {
		owner[c.Block] = c.Claim.Node
		for _, d := range cs.claims[i+1:] {
			if c.Block.Overlaps(d.Block) {
				bad = append(bad, fmt.Sprintf("etcd: claim %s (node %q) overlaps claim %s (node %q)", c.Block, c.Claim.Node, d.Block, d.Claim.Node))
			}
		}
	}
	for _, n := range cs.nodes {
		for _, b := range n.blocks[etcdNet] {
			if !b.IsBound() && b.Usable() && owner[b.Prefix] != n.name {
				bad = append(bad, fmt.Sprintf("node %s allocates from block %s, which etcd says is claimed by %q", n.name, b.Prefix, owner[b.Prefix]))
			}
		}
	}
	return bad
}

// checkUsableTwice: an address inside usable blocks of two nodes (a
// sticky address moved with its workload) is free in at most one of
// them: never can two nodes both hand it out.
func checkUsableTwice(cs *clusterState) []string {
	var bad []string
	for _, net := range netNames {
		free := map[netip.Addr][]string{}
		for _, n := range cs.nodes {
			for _, b := range n.blocks[net] {
				if !b.Usable() {
					continue
				}
				for i := range b.Len() {
					if !b.IsUsed(i) && !b.IsReserved(i) {
						free[b.Addr(i)] = append(free[b.Addr(i)], n.name)
					}
				}
			}
		}
		for _, ip := range slices.SortedFunc(maps.Keys(free), netip.Addr.Compare) {
			if nodes := free[ip]; len(nodes) > 1 {
				bad = append(bad, fmt.Sprintf("network %s: %s is free to hand out on nodes %s", net, ip, strings.Join(nodes, ", ")))
			}
		}
	}
	return bad
}

// checkReservedReported: a live attachment whose address the node's
// current configuration reserves (exclude or gateway changed while it was
// in use) keeps it, and `medianetctl ipam check` lists it.
func checkReservedReported(cs *clusterState, e expect) []string {
	var bad []string
	for i, n := range cs.nodes {
		if !n.checked {
			continue
		}
		for _, net := range netNames {
			spec := e.specs[i][net]
			for _, a := range n.allocs[net] {
				if a.IsReservation() {
					continue
				}
				for _, ip := range a.IPs {
					if !spec.reserved(ip) {
						continue
					}
					if !slices.ContainsFunc(n.findings, func(f ipam.Finding) bool {
						return f.Network == net && f.Kind == ipam.FindingReservedInUse && f.Addr == ip
					}) {
						bad = append(bad, fmt.Sprintf("node %s: %s/%s holds %s, reserved by the configuration (%s), and check does not report it",
							n.name, a.ContainerID, a.IfName, ip, spec))
					}
				}
			}
		}
	}
	return bad
}

// leaks returns the allocations that no live container of the model
// explains (not a sticky hold, nor a foreign or moved reservation), and
// the reservations, which the report lists.
func leaks(cs *clusterState, live []*container) (leaked, reservations []string) {
	want := map[string]bool{}
	for _, c := range live {
		want[cs.nodes[c.node].name+" "+c.net+" "+c.id] = true
	}
	for _, n := range cs.nodes {
		for _, net := range netNames {
			for _, a := range n.allocs[net] {
				h := holder{n.name, a}
				switch {
				case a.IsReservation():
					reservations = append(reservations, fmt.Sprintf("%s %s %v", net, h, a.IPs))
				case !want[n.name+" "+net+" "+a.ContainerID] || a.IfName != ifName:
					leaked = append(leaked, fmt.Sprintf("%s %s %v", net, h, a.IPs))
				}
			}
		}
	}
	return leaked, reservations
}
