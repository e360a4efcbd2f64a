package soak

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/medianet/medianet/ipam"
	"github.com/medianet/medianet/ipam/etcdstore"
)

// The soak's checks must catch what they are for: each case plants one
// violation in a clean cluster state and expects its check to name it.
// These run in `make test` (no root, no etcd).

// cleanState: node a holds 10.98.0.0/29 (c1 at .2) and 10.99.0.0/28 (c3
// at .2); node b holds 10.98.0.8/29 (c2 at .9) and 10.99.0.64/28; etcd
// agrees.
func cleanState(t *testing.T) (*clusterState, expect) {
	t.Helper()
	specs := initialSpecs([]string{"a", "b"}, "15s")
	cs := &clusterState{claimsRead: true}
	live := []*container{
		{id: "c1", node: 0, net: etcdNet, ip: addr("10.98.0.2")},
		{id: "c2", node: 1, net: etcdNet, ip: addr("10.98.0.9")},
		{id: "c3", node: 0, net: staticNet, ip: addr("10.99.0.2")},
	}
	for _, name := range []string{"a", "b"} {
		cs.nodes = append(cs.nodes, nodeState{name: name, allocs: map[string][]ipam.Allocation{},
			blocks: map[string][]ipam.Block{}, checked: true})
	}
	hold(t, cs, 0, etcdNet, "10.98.0.0/29")
	hold(t, cs, 1, etcdNet, "10.98.0.8/29")
	hold(t, cs, 0, staticNet, "10.99.0.0/28")
	hold(t, cs, 1, staticNet, "10.99.0.64/28")
	for _, c := range live {
		allocate(cs, c.node, ipam.Allocation{Key: ipam.Key{Network: c.net, ContainerID: c.id, IfName: ifName}, IPs: []netip.Addr{c.ip}})
	}
	cs.claims = []etcdstore.BlockClaim{
		{Network: etcdNet, Block: pfx("10.98.0.0/29"), Claim: etcdstore.Claim{Node: "a"}},
		{Network: etcdNet, Block: pfx("10.98.0.8/29"), Claim: etcdstore.Claim{Node: "b"}},
	}
	return cs, expect{specs: []map[string]netSpec{specs, specs}, live: live}
}

func addr(s string) netip.Addr  { return netip.MustParseAddr(s) }
func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// hold gives node a block of net.
func hold(t *testing.T, cs *clusterState, node int, net, p string) *ipam.Block {
	t.Helper()
	b, err := ipam.NewBlock(pfx(p), nil)
	if err != nil {
		t.Fatal(err)
	}
	bs := cs.nodes[node].blocks
	bs[net] = append(bs[net], b)
	return &bs[net][len(bs[net])-1]
}

// allocate records a in node's store, marking its addresses used.
func allocate(cs *clusterState, node int, a ipam.Allocation) {
	n := cs.nodes[node]
	n.allocs[a.Network] = append(n.allocs[a.Network], a)
	for _, ip := range a.IPs {
		for _, b := range n.blocks[a.Network] {
			if off, ok := b.Offset(ip); ok {
				b.SetUsed(off, true)
			}
		}
	}
}

func TestVerifyCatchesEachViolation(t *testing.T) {
	alloc := func(net, id, ip, workload string) ipam.Allocation {
		return ipam.Allocation{Key: ipam.Key{Network: net, ContainerID: id, IfName: ifName}, IPs: []netip.Addr{addr(ip)}, Workload: workload}
	}
	holdOf := func(net, workload, ip string) ipam.Allocation {
		a := alloc(net, "", ip, workload)
		a.Key = ipam.HoldKey(net, workload, ifName)
		a.HeldUntil = time.Now().Add(time.Minute)
		return a
	}
	tests := []struct {
		name  string
		plant func(*testing.T, *clusterState, *expect)
		want  string // "" for a state that must pass
	}{
		{"clean", func(*testing.T, *clusterState, *expect) {}, ""},
		{"address live on two nodes", func(t *testing.T, cs *clusterState, e *expect) {
			hold(t, cs, 1, etcdNet, "10.98.0.0/30")
			allocate(cs, 1, alloc(etcdNet, "x", "10.98.0.2", ""))
		}, "address 10.98.0.2 held by"},
		{"hold of one pod, address live for another", func(t *testing.T, cs *clusterState, e *expect) {
			allocate(cs, 0, holdOf(etcdNet, "ns/p", "10.98.0.3"))
			hold(t, cs, 1, etcdNet, "10.98.0.3/32").Bound = "ns/p/eth0" // a sticky address bound to b by its record
			allocate(cs, 1, alloc(etcdNet, "y", "10.98.0.3", "ns/q"))
		}, "address 10.98.0.3 held by"},
		{"hold moved with its pod", func(t *testing.T, cs *clusterState, e *expect) {
			allocate(cs, 0, holdOf(etcdNet, "ns/p", "10.98.0.3"))
			hold(t, cs, 1, etcdNet, "10.98.0.3/32").Bound = "ns/p/eth0" // a sticky address bound to b by its record
			allocate(cs, 1, alloc(etcdNet, "y", "10.98.0.3", "ns/p"))
		}, ""},
		{"moved reservation beside the live address", func(t *testing.T, cs *clusterState, e *expect) {
			m := alloc(etcdNet, "", "10.98.0.4", "ns/p")
			m.Key = ipam.MovedKey(etcdNet, "b", addr("10.98.0.4"))
			allocate(cs, 0, m)
			hold(t, cs, 1, etcdNet, "10.98.0.4/32").Bound = "ns/p/eth0" // a sticky address bound to b by its record
			allocate(cs, 1, alloc(etcdNet, "y", "10.98.0.4", "ns/p"))
		}, ""},
		{"live container's allocation lost", func(t *testing.T, cs *clusterState, e *expect) {
			cs.nodes[1].allocs[etcdNet] = nil
		}, "lost the allocation of live container c2"},
		{"live container's address changed", func(t *testing.T, cs *clusterState, e *expect) {
			cs.nodes[1].allocs[etcdNet][0].IPs = []netip.Addr{addr("10.98.0.10")}
		}, "holds [10.98.0.10]"},
		{"two live containers given one address", func(t *testing.T, cs *clusterState, e *expect) {
			e.live = append(e.live, &container{id: "c9", node: 1, net: etcdNet, ip: addr("10.98.0.2")})
		}, "were both given 10.98.0.2"},
		{"failed ADD left an allocation", func(t *testing.T, cs *clusterState, e *expect) {
			e.absent = []*container{{id: "c3", node: 0, net: staticNet}}
		}, "failed ADD of c3"},
		{"blocks of two nodes overlap", func(t *testing.T, cs *clusterState, e *expect) {
			hold(t, cs, 1, etcdNet, "10.98.0.0/28")
		}, "overlaps block"},
		{"a lost block may overlap", func(t *testing.T, cs *clusterState, e *expect) {
			hold(t, cs, 1, etcdNet, "10.98.0.0/28").Lost = "claimed by node a"
		}, ""},
		{"block held but claimed by another node", func(t *testing.T, cs *clusterState, e *expect) {
			cs.claims[1].Claim.Node = "a"
		}, "which etcd says is claimed by \"a\""},
		{"claims overlap", func(t *testing.T, cs *clusterState, e *expect) {
			cs.claims = append(cs.claims, etcdstore.BlockClaim{Network: etcdNet, Block: pfx("10.98.0.8/28"), Claim: etcdstore.Claim{Node: "c"}})
		}, "overlaps claim"},
		{"address free on two nodes", func(t *testing.T, cs *clusterState, e *expect) {
			hold(t, cs, 1, etcdNet, "10.98.0.5/32").Bound = "ns/p/eth0" // a sticky address bound to b by its record
		}, "10.98.0.5 is free to hand out on nodes a, b"},
		{"moved address used at home", func(t *testing.T, cs *clusterState, e *expect) {
			hold(t, cs, 1, etcdNet, "10.98.0.2/32").Bound = "ns/p/eth0" // a sticky address bound to b by its record
		}, ""},
		{"reserved address in use, not reported", func(t *testing.T, cs *clusterState, e *expect) {
			s := e.specs[0][staticNet].clone()
			s.Exclude = []netip.Prefix{pfx("10.99.0.2/32")}
			e.specs[0] = map[string]netSpec{etcdNet: e.specs[0][etcdNet], staticNet: s}
		}, "check does not report it"},
		{"reserved address in use, reported", func(t *testing.T, cs *clusterState, e *expect) {
			s := e.specs[0][staticNet].clone()
			s.Gateway = addr("10.99.0.2")
			e.specs[0] = map[string]netSpec{etcdNet: e.specs[0][etcdNet], staticNet: s}
			cs.nodes[0].findings = []ipam.Finding{{Network: staticNet, Kind: ipam.FindingReservedInUse, Addr: addr("10.99.0.2")}}
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs, e := cleanState(t)
			tt.plant(t, cs, &e)
			passed := 0
			bad := verify(cs, e, func(string) { passed++ })
			got := strings.Join(bad, "\n")
			switch {
			case tt.want == "" && len(bad) > 0:
				t.Errorf("violations in a valid state:\n%s", got)
			case tt.want != "" && !strings.Contains(got, tt.want):
				t.Errorf("violations %q, want one naming %q", got, tt.want)
			case tt.want == "" && passed != len(invariants)-1:
				t.Errorf("%d checks counted as passed, want %d", passed, len(invariants)-1)
			}
		})
	}
}

func TestLeaksListsWhatNoLiveContainerExplains(t *testing.T) {
	cs, e := cleanState(t)
	allocate(cs, 1, ipam.Allocation{Key: ipam.Key{Network: staticNet, ContainerID: "gone", IfName: ifName}, IPs: []netip.Addr{addr("10.99.0.66")}})
	h := ipam.Allocation{Key: ipam.HoldKey(etcdNet, "ns/p", ifName), IPs: []netip.Addr{addr("10.98.0.5")}, HeldUntil: time.Now().Add(time.Minute), Workload: "ns/p"}
	allocate(cs, 0, h)
	leaked, reservations := leaks(cs, e.live)
	if len(leaked) != 1 || !strings.Contains(leaked[0], "b:gone/net1") {
		t.Errorf("leaked = %q, want the allocation of gone on b alone", leaked)
	}
	if len(reservations) != 1 || !strings.Contains(reservations[0], "sticky:ns/p") {
		t.Errorf("reservations = %q, want the hold of ns/p", reservations)
	}
}

func TestSpecReserved(t *testing.T) {
	s := initialSpecs([]string{"a"}, "")[staticNet]
	s.Exclude = []netip.Prefix{pfx("10.99.0.8/30")}
	for _, tt := range []struct {
		a    string
		want bool
	}{
		{"10.99.0.0", true}, {"10.99.0.255", true}, {"10.99.0.1", true}, // network, broadcast, default gateway
		{"10.99.0.9", true}, {"10.99.0.12", false}, {"10.99.0.2", false},
	} {
		if got := s.reserved(addr(tt.a)); got != tt.want {
			t.Errorf("reserved(%s) = %t, want %t", tt.a, got, tt.want)
		}
	}
	if why := s.mayHandOut("a", addr("10.99.0.70")); !strings.Contains(why, "outside node a's ranges") {
		t.Errorf("mayHandOut(a, 10.99.0.70) = %q, want outside a's ranges", why)
	}
}
