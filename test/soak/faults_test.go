package soak

import (
	"net/netip"
	"slices"

	"github.com/medianet/medianet/ipam"
)

// Fault kinds, as the figures name them.
const (
	faultEtcdStop      = "etcd stopped (SIGTERM) and restarted"
	faultEtcdKill      = "etcd killed (SIGKILL) and restarted"
	faultBlackhole     = "etcd blackholed (DROP) and healed"
	faultCut           = "node cut off from etcd and healed"
	faultKillGroup     = "plugin killed -9 mid-operation (process group)"
	faultKillParent    = "plugin killed -9 mid-operation (runtime's process only)"
	changeExcludeAdd   = "config: exclude added (rolling)"
	changeExcludeDrop  = "config: exclude entry removed (rolling)"
	changeGateway      = "config: gateway moved (rolling)"
	changeBlockSize    = "config: blockSize changed on the etcd network (rolling)"
	changeRangeDrop    = "config: node removed from nodeRanges (rolling)"
	changeRangeRestore = "config: node's range given back (rolling)"
)

// faultRate is the chance that a step starts a fault or a config change.
const faultRate = 0.07

// faults is the state of what is broken and what is being changed.
type faults struct {
	etcd      string // "up", "stopped", "blackholed"
	etcdUntil int    // step at which etcd comes back
	cutUntil  []int  // per node: step at which its link heals (0: linked)
	target    map[string]netSpec
	original  map[string]netSpec
	rollout   *rollout
	dropped   string // node removed from the static network's nodeRanges
}

// rollout is a configuration change reaching the nodes one at a time, as
// a DaemonSet rewrites each node's file.
type rollout struct {
	what    string
	spec    netSpec
	pending []int
	nextAt  int
}

func newFaults(specs map[string]netSpec, nodes int) *faults {
	f := &faults{etcd: "up", cutUntil: make([]int, nodes), target: map[string]netSpec{}, original: map[string]netSpec{}}
	for k, v := range specs {
		f.target[k], f.original[k] = v.clone(), v.clone()
	}
	return f
}

// linked returns the nodes not cut off.
func (f *faults) linked() []int {
	var out []int
	for i, u := range f.cutUntil {
		if u == 0 {
			out = append(out, i)
		}
	}
	return out
}

// etcdAnswers reports whether etcd is up and reachable from the test.
func (f *faults) etcdAnswers() bool { return f.etcd == "up" }

// tick heals what is due, moves a rollout on, and maybe starts a new
// fault or configuration change.
func (s *soak) tick() {
	f := s.faults
	if f.etcd != "up" && s.step >= f.etcdUntil {
		s.healEtcd()
	}
	for i, until := range f.cutUntil {
		if until != 0 && s.step >= until {
			s.must(s.nodes[i].cut(false))
			f.cutUntil[i] = 0
			s.logf("fault healed: node %s linked to etcd again", s.nodes[i].name)
		}
	}
	if r := f.rollout; r != nil && s.step >= r.nextAt {
		s.rollOne()
	}
	if s.rng.Float64() < faultRate {
		s.inject()
	}
}

func (s *soak) healEtcd() {
	f := s.faults
	switch f.etcd {
	case "stopped":
		s.srv.Restart()
		s.logf("fault healed: etcd restarted")
	case "blackholed":
		s.must(s.srv.Heal())
		s.logf("fault healed: etcd's blackhole removed")
	}
	f.etcd = "up"
}

// inject starts one fault or configuration change, chosen among those
// that can start now.
func (s *soak) inject() {
	f := s.faults
	var kinds []string
	if f.etcd == "up" {
		kinds = append(kinds, faultEtcdStop, faultEtcdKill, faultBlackhole, faultBlackhole)
	}
	if linked := len(f.linked()); linked >= 2 { // at most two nodes cut off at once
		kinds = append(kinds, faultCut, faultCut)
	}
	if f.rollout == nil {
		kinds = append(kinds, changeExcludeAdd, changeExcludeAdd, changeGateway, changeBlockSize)
		if f.dropped == "" {
			kinds = append(kinds, changeRangeDrop)
		} else {
			kinds = append(kinds, changeRangeRestore, changeRangeRestore)
		}
		if len(f.target[etcdNet].Exclude)+len(f.target[staticNet].Exclude) > 0 {
			kinds = append(kinds, changeExcludeDrop)
		}
	}
	if len(kinds) == 0 {
		return
	}
	kind := kinds[s.rng.IntN(len(kinds))]
	s.fig.faults[kind]++
	switch kind {
	case faultEtcdStop, faultEtcdKill:
		f.etcd, f.etcdUntil = "stopped", s.step+2+s.rng.IntN(9)
		if kind == faultEtcdKill {
			s.srv.Kill()
		} else {
			s.srv.Stop()
		}
		s.logf("fault: %s, back at step %d", kind, f.etcdUntil)
	case faultBlackhole:
		s.must(s.srv.Blackhole())
		f.etcd, f.etcdUntil = "blackholed", s.step+2+s.rng.IntN(7)
		s.logf("fault: %s, healed at step %d", kind, f.etcdUntil)
	case faultCut:
		linked := f.linked()
		i := linked[s.rng.IntN(len(linked))]
		s.must(s.nodes[i].cut(true))
		f.cutUntil[i] = s.step + 3 + s.rng.IntN(13)
		s.logf("fault: node %s cut off from etcd, healed at step %d", s.nodes[i].name, f.cutUntil[i])
	default:
		s.change(kind)
	}
}

// change starts a rolling configuration change of kind.
func (s *soak) change(kind string) {
	f := s.faults
	net := netNames[s.rng.IntN(len(netNames))]
	switch kind {
	case changeBlockSize, changeRangeDrop, changeRangeRestore:
		net = map[string]string{changeBlockSize: etcdNet}[kind]
		if net == "" {
			net = staticNet
		}
	case changeExcludeDrop:
		if len(f.target[net].Exclude) == 0 {
			net = otherNet(net)
		}
	}
	spec := f.target[net].clone()
	switch kind {
	case changeExcludeAdd:
		for range 1 + s.rng.IntN(2) {
			if p := s.pickExclude(spec); !slices.Contains(spec.Exclude, p) {
				spec.Exclude = append(spec.Exclude, p)
			}
		}
	case changeExcludeDrop:
		i := s.rng.IntN(len(spec.Exclude))
		spec.Exclude = slices.Delete(spec.Exclude, i, i+1)
	case changeGateway:
		spec.Gateway = s.pickAddr(spec, true)
	case changeBlockSize:
		sizes := slices.DeleteFunc([]int{28, 29, 30}, func(b int) bool { return b == spec.BlockSize })
		spec.BlockSize = sizes[s.rng.IntN(len(sizes))]
	case changeRangeDrop:
		f.dropped = s.nodes[s.rng.IntN(len(s.nodes))].name
		delete(spec.Ranges, f.dropped)
	case changeRangeRestore:
		spec.Ranges = f.original[staticNet].clone().Ranges
		f.dropped = ""
	}
	f.target[net] = spec
	f.rollout = &rollout{what: kind, spec: spec, pending: s.rng.Perm(len(s.nodes)), nextAt: s.step}
	s.logf("change: %s on %s: %s, rolled out node by node", kind, net, spec)
	s.rollOne()
}

func otherNet(net string) string {
	if net == etcdNet {
		return staticNet
	}
	return etcdNet
}

// rollOne gives the rollout's configuration to its next node.
func (s *soak) rollOne() {
	r := s.faults.rollout
	n := s.nodes[r.pending[0]]
	r.pending = r.pending[1:]
	s.must(n.setSpec(r.spec.clone()))
	s.logf("change: node %s now has %s: %s", n.name, r.spec.Name, r.spec)
	if len(r.pending) == 0 {
		s.faults.rollout = nil
		return
	}
	r.nextAt = s.step + 1 + s.rng.IntN(4)
}

// pickExclude returns an address or a /30 of spec's subnet; half the time
// an address a live container holds (excluded while in use).
func (s *soak) pickExclude(spec netSpec) netip.Prefix {
	if s.rng.IntN(4) == 0 {
		a := s.pickAddr(spec, false)
		p, _ := a.Prefix(30)
		return p
	}
	a := s.pickAddr(spec, true)
	return netip.PrefixFrom(a, a.BitLen())
}

// pickAddr returns a host address of spec's subnet, half the time one a
// live container holds when preferLive.
func (s *soak) pickAddr(spec netSpec, preferLive bool) netip.Addr {
	if live := s.model.live(-1, spec.Name); preferLive && len(live) > 0 && s.rng.IntN(2) == 0 {
		return live[s.rng.IntN(len(live))].ip
	}
	n := ipam.Size(spec.Subnet)
	a, _ := ipam.Offset(spec.Subnet.Addr(), 1+s.rng.Uint64N(n-2))
	return a
}

// finish ends every fault and rollout, for the final checks.
func (s *soak) finishFaults() {
	f := s.faults
	if f.etcd != "up" {
		s.healEtcd()
	}
	for i, until := range f.cutUntil {
		if until != 0 {
			s.must(s.nodes[i].cut(false))
			f.cutUntil[i] = 0
		}
	}
	for f.rollout != nil {
		s.rollOne()
	}
	s.logf("faults healed and rollouts finished for the final checks")
}

// killFault names a kill mode as a fault kind.
func killFault(mode int) string {
	return map[int]string{killGroup: faultKillGroup, killParent: faultKillParent}[mode]
}
