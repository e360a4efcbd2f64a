package soak

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
)

// The soak's own model of the cluster's containers, as a runtime keeps
// it: which sandboxes are live (their ADD succeeded and no DEL was asked),
// which are dying (their ADD failed or was killed, or a DEL is under way:
// the runtime repeats DEL until it succeeds, as kubelet does), which are
// gone. GC's valid-attachments come from it, and the leak check at the
// end compares the stores with it.

type container struct {
	id       string
	node     int
	net      string
	workload string     // "namespace/name" when ADD passed K8S_POD_*
	ip       netip.Addr // the address ADD returned (live containers)
	dying    bool
}

func (c *container) String() string {
	s := fmt.Sprintf("%s on %s", c.id, c.net)
	if c.workload != "" {
		s += " pod " + c.workload
	}
	if c.ip.IsValid() {
		s += " " + c.ip.String()
	}
	return s
}

type model struct {
	next       int
	containers map[string]*container // live and dying
	gone       []*container          // deleted, most recent last (for DEL twice)
	pods       []string              // the sticky network's workloads
}

// Pod names: a pool of StatefulSet-like pods on each network, so that the
// same workload comes back (sticky holds on the etcd network).
const podsPerNet = 10

func newModel() *model {
	m := &model{containers: map[string]*container{}}
	for i := range podsPerNet {
		m.pods = append(m.pods, fmt.Sprintf("soak/pod-%d", i))
	}
	return m
}

// newContainer returns a new sandbox for an ADD; the model knows it once
// the ADD's outcome is known (settle).
func (m *model) newContainer(node int, net string) *container {
	m.next++
	return &container{id: fmt.Sprintf("c%05d", m.next), node: node, net: net}
}

// live returns the live containers, sorted by id (node -1: every node).
func (m *model) live(node int, net string) []*container {
	var out []*container
	for _, id := range slices.Sorted(maps.Keys(m.containers)) {
		c := m.containers[id]
		if !c.dying && (node < 0 || c.node == node) && (net == "" || c.net == net) {
			out = append(out, c)
		}
	}
	return out
}

func (m *model) dying() []*container {
	var out []*container
	for _, id := range slices.Sorted(maps.Keys(m.containers)) {
		if c := m.containers[id]; c.dying {
			out = append(out, c)
		}
	}
	return out
}

// freePod returns a workload of net with no live container (a dying one
// may still wait for its DEL: kubelet starts the pod's new sandbox, here
// or on another node, while the old one's DEL is retried), or "".
func (m *model) freePod(rng *rand.Rand, busy map[string]bool) string {
	inUse := map[string]bool{}
	for _, c := range m.containers {
		if !c.dying && c.net == etcdNet && c.workload != "" {
			inUse[c.workload] = true
		}
	}
	var free []string
	for _, p := range m.pods {
		if !inUse[p] && !busy[p] {
			free = append(free, p)
		}
	}
	if len(free) == 0 {
		return ""
	}
	return free[rng.IntN(len(free))]
}

// remove forgets c after its successful DEL.
func (m *model) remove(c *container) {
	delete(m.containers, c.id)
	c.dying = true
	m.gone = append(m.gone, c)
	if len(m.gone) > 200 {
		m.gone = m.gone[100:]
	}
}

// liveIP reports the live container holding a on net, if any.
func (m *model) liveIP(net string, a netip.Addr) (*container, bool) {
	for _, c := range m.containers {
		if !c.dying && c.net == net && c.ip == a {
			return c, true
		}
	}
	return nil, false
}
