package soak

import (
	"fmt"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/medianet/medianet/internal/cnitest"
	"github.com/medianet/medianet/internal/nstest"
	"github.com/medianet/medianet/ipam"
)

// The two networks every node has.
const (
	etcdNet   = "soak-etcd"   // blocks claimed in etcd, small, sticky
	staticNet = "soak-static" // static nodeRanges
	ifName    = "net1"
	etcdPfx   = "/medianet-soak"
)

var netNames = []string{etcdNet, staticNet}

// netSpec is a network's configuration as one node has it: during a
// rolling change, nodes differ.
type netSpec struct {
	Name      string
	Subnet    netip.Prefix
	Etcd      bool
	BlockSize int
	Gateway   netip.Addr // invalid: the default, the subnet's first address
	Exclude   []netip.Prefix
	Ranges    map[string][]netip.Prefix // static networks: nodeRanges
	Sticky    string
}

// initialSpecs: the etcd network's /25 in /29 blocks (16 blocks of 8
// addresses for three nodes: claims, give-backs and near exhaustion are
// frequent), with ipam.sticky set to sticky ("" for none); the static
// network's /24 gives each node a /26 in /28 blocks and keeps a /26
// unassigned.
func initialSpecs(nodes []string, sticky string) map[string]netSpec {
	ranges := map[string][]netip.Prefix{}
	for i, n := range nodes {
		ranges[n] = []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 99, 0, byte(64 * i)}), 26)}
	}
	return map[string]netSpec{
		etcdNet:   {Name: etcdNet, Subnet: netip.MustParsePrefix("10.98.0.0/25"), Etcd: true, BlockSize: 29, Sticky: sticky},
		staticNet: {Name: staticNet, Subnet: netip.MustParsePrefix("10.99.0.0/24"), BlockSize: 28, Ranges: ranges},
	}
}

func (s netSpec) clone() netSpec {
	c := s
	c.Exclude = slices.Clone(s.Exclude)
	if s.Ranges != nil {
		c.Ranges = map[string][]netip.Prefix{}
		for k, v := range s.Ranges {
			c.Ranges[k] = slices.Clone(v)
		}
	}
	return c
}

// gateway returns the gateway the plugin uses: the configured one, else
// the subnet's first address (as host-local does).
func (s netSpec) gateway() netip.Addr {
	if s.Gateway.IsValid() {
		return s.Gateway
	}
	return s.Subnet.Addr().Next()
}

// reserved reports whether the spec forbids handing a out: network and
// broadcast addresses, the gateway, an exclude entry. Computed here, from
// the configuration alone, not by the code under test.
func (s netSpec) reserved(a netip.Addr) bool {
	if a == s.Subnet.Addr() || a == ipam.LastAddr(s.Subnet) || a == s.gateway() {
		return true
	}
	return slices.ContainsFunc(s.Exclude, func(p netip.Prefix) bool { return p.Contains(a) })
}

// mayHandOut says why node may not get a from a new ADD, or "".
func (s netSpec) mayHandOut(node string, a netip.Addr) string {
	switch {
	case !s.Subnet.Contains(a):
		return fmt.Sprintf("%s is outside subnet %s", a, s.Subnet)
	case s.reserved(a):
		return fmt.Sprintf("%s is reserved (gateway %s, exclude %v)", a, s.gateway(), s.Exclude)
	case s.Ranges != nil && !slices.ContainsFunc(s.Ranges[node], func(p netip.Prefix) bool { return p.Contains(a) }):
		return fmt.Sprintf("%s is outside node %s's ranges %v", a, node, s.Ranges[node])
	}
	return ""
}

func (s netSpec) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s blockSize %d gateway %s exclude %v", s.Subnet, s.BlockSize, s.gateway(), s.Exclude)
	if s.Ranges != nil {
		fmt.Fprintf(&b, " nodeRanges")
		for _, k := range slices.Sorted(maps.Keys(s.Ranges)) {
			fmt.Fprintf(&b, " %s=%v", k, s.Ranges[k])
		}
	}
	return b.String()
}

// node is one simulated node: its own network namespace (linked to etcd's
// by a veth of its own, which cut drops), name, data directory and
// configuration files.
type node struct {
	name     string
	ns       *nstest.NS
	dir      string
	confDir  string
	endpoint string
	cut      func(bool) error
	specs    map[string]netSpec
}

// ipamNet is the node's configuration of network net.
func (n *node) ipamNet(net string) cnitest.IPAMNet {
	s := n.specs[net]
	extra := map[string]any{"gateway": s.gateway().String()}
	if len(s.Exclude) > 0 {
		extra["exclude"] = prefixStrings(s.Exclude)
	}
	if s.Sticky != "" {
		extra["sticky"] = s.Sticky
	}
	in := cnitest.IPAMNet{Node: n.name, Dir: n.dir, Name: net, Subnet: s.Subnet.String(), BlockSize: s.BlockSize, Extra: extra}
	if s.Ranges != nil {
		nr := map[string][]string{}
		for k, v := range s.Ranges {
			nr[k] = prefixStrings(v)
		}
		extra["nodeRanges"] = nr
	}
	if s.Etcd {
		in.Etcd = map[string]any{"endpoints": []string{n.endpoint}, "prefix": etcdPfx,
			"requestTimeout": "1s", "idleRelease": "5s"}
	}
	return in
}

// conf returns the node's configuration of net, as its runtime passes it.
func (n *node) conf(net string) []byte { return n.ipamNet(net).JSON() }

// confFile is where the node's configuration of net is written, for
// medianetctl.
func (n *node) confFile(net string) string { return filepath.Join(n.confDir, net+".conf") }

func (n *node) confFiles() []string {
	var out []string
	for _, net := range netNames {
		out = append(out, n.confFile(net))
	}
	return out
}

// setSpec changes the node's configuration of a network and rewrites its
// file.
func (n *node) setSpec(s netSpec) error {
	n.specs[s.Name] = s
	return os.WriteFile(n.confFile(s.Name), n.conf(s.Name), 0o600)
}

func prefixStrings(ps []netip.Prefix) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		if p.IsSingleIP() {
			out[i] = p.Addr().String()
		} else {
			out[i] = p.String()
		}
	}
	return out
}
