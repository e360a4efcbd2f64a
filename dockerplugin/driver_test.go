package dockerplugin

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/medianet/medianet/macvlan"
)

func TestActivateAndCapabilities(t *testing.T) {
	h := newHarness(t, Config{Scope: ScopeGlobal}, newFakeLinks())
	var act activateResponse
	h.must("Plugin.Activate", nil, &act)
	if got, want := act.Implements, []string{"NetworkDriver", "IpamDriver"}; !slices.Equal(got, want) {
		t.Errorf("Implements = %v, want %v", got, want)
	}
	var caps capabilitiesResponse
	h.must("NetworkDriver.GetCapabilities", nil, &caps)
	if caps.Scope != ScopeGlobal || caps.ConnectivityScope != ScopeGlobal {
		t.Errorf("capabilities = %+v, want global/global", caps)
	}
	var icaps ipamCapabilitiesResponse
	h.must("IpamDriver.GetCapabilities", nil, &icaps)
	if !icaps.RequiresMACAddress {
		t.Errorf("RequiresMACAddress = false, want true")
	}
	opts := map[string]string{"parent": "eth9", "vlan": "100"}
	var alloc allocateNetworkResponse
	h.must("NetworkDriver.AllocateNetwork", allocateNetworkRequest{NetworkID: "n1", Options: opts}, &alloc)
	if got, want := alloc.Options, opts; len(got) != len(want) || got["parent"] != "eth9" || got["vlan"] != "100" {
		t.Errorf("AllocateNetwork options = %v, want %v echoed", got, want)
	}
	if err := h.call("NetworkDriver.AllocateNetwork", allocateNetworkRequest{NetworkID: "n2", Options: map[string]string{"vlan": "100"}}, nil); err == nil || !strings.Contains(err.Error(), "parent") {
		t.Errorf("AllocateNetwork without parent: err = %v, want one naming parent", err)
	}
}

// TestLifecycle walks Docker's calls for two networks on one parent, two
// containers each, then removal, and checks that nothing is left.
func TestLifecycle(t *testing.T) {
	links := newFakeLinks("lan0")
	h := newHarness(t, Config{}, links)
	type ep struct{ nid, eid, pid, addr string }
	var eps []ep
	seen := map[string]bool{}
	for i, subnet := range []string{"192.168.50.0/24", "192.168.51.0/24"} {
		pid := h.pool(subnet, "", "", nil)
		nid := "net" + string(rune('a'+i))
		create := createNetworkRequest{NetworkID: nid, Options: generic(map[string]string{"parent": "lan0"}),
			IPv4Data: []ipamData{{Pool: subnet, Gateway: strings.Replace(subnet, ".0/24", ".1/24", 1)}}}
		h.must("NetworkDriver.CreateNetwork", create, nil)
		h.must("NetworkDriver.CreateNetwork", create, nil) // idempotent
		for j := range 2 {
			a := h.mustAddr(pid, "")
			if seen[a] {
				t.Fatalf("address %s handed out twice", a)
			}
			seen[a] = true
			if p := netip.MustParsePrefix(a); p.Addr() == netip.MustParsePrefix(create.IPv4Data[0].Gateway).Addr() {
				t.Fatalf("gateway %s handed to a container", a)
			}
			eid := nid + "ep" + string(rune('0'+j)) + "0123456789abcdef"
			var ce createEndpointResponse
			h.must("NetworkDriver.CreateEndpoint", createEndpointRequest{NetworkID: nid, EndpointID: eid, Interface: &endpointInterface{Address: a}}, &ce)
			if ce.Interface == nil || ce.Interface.MacAddress == "" {
				t.Fatalf("CreateEndpoint gave no MAC: %+v", ce)
			}
			var j1, j2 joinResponse
			h.must("NetworkDriver.Join", joinRequest{NetworkID: nid, EndpointID: eid, SandboxKey: "/var/run/docker/netns/x"}, &j1)
			h.must("NetworkDriver.Join", joinRequest{NetworkID: nid, EndpointID: eid}, &j2)
			if j1.InterfaceName != j2.InterfaceName || j1.InterfaceName.DstPrefix != "eth" || !j1.DisableGatewayService {
				t.Fatalf("Join = %+v then %+v, want the same link, prefix eth, gateway service off", j1, j2)
			}
			if got, want := j1.Gateway, netip.MustParsePrefix(create.IPv4Data[0].Gateway).Addr().String(); got != want {
				t.Errorf("Join gateway = %q, want %q", got, want)
			}
			eps = append(eps, ep{nid, eid, pid, netip.MustParsePrefix(a).Addr().String()})
		}
	}
	if got := len(links.names()); got != 4 {
		t.Fatalf("links after joins = %v, want 4", links.names())
	}
	for _, e := range eps {
		for range 2 { // every removal call is idempotent
			h.must("NetworkDriver.Leave", endpointRequest{NetworkID: e.nid, EndpointID: e.eid}, nil)
			h.must("NetworkDriver.DeleteEndpoint", endpointRequest{NetworkID: e.nid, EndpointID: e.eid}, nil)
			h.must("IpamDriver.ReleaseAddress", releaseAddressRequest{PoolID: e.pid, Address: e.addr}, nil)
		}
	}
	if got := links.names(); len(got) != 0 {
		t.Errorf("links left after leave = %v, want none", got)
	}
	if got := allocations(t, h); len(got) != 0 {
		t.Errorf("allocations left = %v, want none", got)
	}
}

func TestRestartKeepsState(t *testing.T) {
	links := newFakeLinks("lan0")
	h := newHarness(t, Config{}, links)
	pid := h.pool("10.77.0.0/24", "", "10.77.0.254", nil)
	h.must("NetworkDriver.CreateNetwork", createNetworkRequest{NetworkID: "n", Options: generic(map[string]string{"parent": "lan0"}),
		IPv4Data: []ipamData{{Pool: "10.77.0.0/24", Gateway: "10.77.0.254/24"}}}, nil)
	first := h.mustAddr(pid, "")
	h.must("NetworkDriver.CreateEndpoint", createEndpointRequest{NetworkID: "n", EndpointID: "e1", Interface: &endpointInterface{Address: first}}, nil)
	var j joinResponse
	h.must("NetworkDriver.Join", joinRequest{NetworkID: "n", EndpointID: "e1"}, &j)

	h.restart(Config{})
	var info endpointInfoResponse
	h.must("NetworkDriver.EndpointOperInfo", endpointRequest{NetworkID: "n", EndpointID: "e1"}, &info)
	if got := info.Value["address"]; got != first {
		t.Errorf("endpoint address after restart = %q, want %q", got, first)
	}
	second := h.mustAddr(pid, "")
	if second == first {
		t.Errorf("address after restart = %s, the one still in use", second)
	}
	if _, err := h.addr(pid, netip.MustParsePrefix(first).Addr().String()); err == nil {
		t.Errorf("--ip %s (in use) after restart: no error", first)
	}
	h.must("NetworkDriver.Leave", endpointRequest{NetworkID: "n", EndpointID: "e1"}, nil)
	if got := links.names(); len(got) != 0 {
		t.Errorf("links after Leave following restart = %v, want none", got)
	}
}

func TestIPRangeAuxAndStatic(t *testing.T) {
	h := newHarness(t, Config{}, newFakeLinks())
	pid := h.pool("192.168.60.0/24", "192.168.60.32/28", "192.168.60.1", nil)
	// Docker reserves --aux-address values without a MAC option.
	for _, aux := range []string{"192.168.60.33", "192.168.60.200"} {
		var r requestAddressResponse
		h.must("IpamDriver.RequestAddress", requestAddressRequest{PoolID: pid, Address: aux}, &r)
		if got, want := r.Address, aux+"/24"; got != want {
			t.Fatalf("aux %s: got %s, want %s", aux, got, want)
		}
	}
	rng := netip.MustParsePrefix("192.168.60.32/28")
	seen := map[netip.Addr]bool{}
	for {
		a, err := h.addr(pid, "")
		if err != nil {
			if !strings.Contains(err.Error(), "no free address") {
				t.Fatalf("exhaustion error = %v, want one saying no free address", err)
			}
			break
		}
		ip := netip.MustParsePrefix(a).Addr()
		if !rng.Contains(ip) || seen[ip] || ip.String() == "192.168.60.33" {
			t.Fatalf("dynamic address %s: outside %s, repeated or the aux address", ip, rng)
		}
		seen[ip] = true
	}
	if got, want := len(seen), 15; got != want { // 16 minus the aux address
		t.Errorf("dynamic addresses in %s = %d, want %d", rng, got, want)
	}
	// A static --ip outside the range is fine once, and never twice.
	if got := h.mustAddr(pid, "192.168.60.100"); got != "192.168.60.100/24" {
		t.Errorf("static --ip = %s, want 192.168.60.100/24", got)
	}
	for _, taken := range []string{"192.168.60.100", "192.168.60.200", "192.168.60.34"} {
		if _, err := h.addr(pid, taken); err == nil || !strings.Contains(err.Error(), "in use") {
			t.Errorf("--ip %s again: err = %v, want one saying in use", taken, err)
		}
	}
	h.must("IpamDriver.ReleaseAddress", releaseAddressRequest{PoolID: pid, Address: "192.168.60.100"}, nil)
	h.mustAddr(pid, "192.168.60.100")
	h.must("IpamDriver.ReleasePool", releasePoolRequest{PoolID: pid}, nil)
	if got := allocations(t, h); len(got) != 0 {
		t.Errorf("allocations after ReleasePool = %d, want 0", len(got))
	}
}

func TestNodeRanges(t *testing.T) {
	h := newHarness(t, Config{Node: "node-b"}, newFakeLinks())
	pid := h.pool("192.168.70.0/24", "", "192.168.70.254", map[string]string{
		"block-size": "28", "node-ranges": "node-a=192.168.70.0/28,node-b=192.168.70.16/28"})
	for range 5 {
		a := netip.MustParsePrefix(h.mustAddr(pid, "")).Addr()
		if !netip.MustParsePrefix("192.168.70.16/28").Contains(a) {
			t.Fatalf("node-b got %s, outside its range 192.168.70.16/28", a)
		}
	}
	if _, err := h.addr(pid, "192.168.70.5"); err == nil || !strings.Contains(err.Error(), "node-ranges") {
		t.Errorf("--ip in node-a's range: err = %v, want one naming node-ranges", err)
	}
	// An aux address in another node's range is accepted, not reserved here.
	h.must("IpamDriver.RequestAddress", requestAddressRequest{PoolID: pid, Address: "192.168.70.6"}, nil)
}

func TestIPv6(t *testing.T) {
	h := newHarness(t, Config{}, newFakeLinks("lan0"))
	pid := h.pool("fd00:77::/64", "", "", nil)
	a := netip.MustParsePrefix(h.mustAddr(pid, ""))
	if !a.Addr().Is6() || a.Bits() != 64 || a.Addr() == netip.MustParseAddr("fd00:77::1") {
		t.Errorf("IPv6 address = %s, want a /64 address other than the default gateway", a)
	}
	h.must("NetworkDriver.CreateNetwork", createNetworkRequest{NetworkID: "n6", Options: generic(map[string]string{"parent": "lan0"}),
		IPv4Data: []ipamData{{Pool: "10.9.0.0/24", Gateway: "10.9.0.1/24"}}, IPv6Data: []ipamData{{Pool: "fd00:77::/64", Gateway: "fd00:77::1/64"}}}, nil)
	h.must("NetworkDriver.CreateEndpoint", createEndpointRequest{NetworkID: "n6", EndpointID: "e6", Interface: &endpointInterface{AddressIPv6: a.String()}}, nil)
	var j joinResponse
	h.must("NetworkDriver.Join", joinRequest{NetworkID: "n6", EndpointID: "e6"}, &j)
	if j.GatewayIPv6 != "fd00:77::1" || j.Gateway != "" {
		t.Errorf("Join gateways = %q, %q; want none for IPv4 and fd00:77::1", j.Gateway, j.GatewayIPv6)
	}
}

// TestLinkMovedBackAfterLeave follows Docker's order on container removal:
// Leave, then the link comes back to the host namespace under its
// temporary name, then DeleteEndpoint, which must remove it.
func TestLinkMovedBackAfterLeave(t *testing.T) {
	links := newFakeLinks("lan0")
	h := newHarness(t, Config{}, links)
	h.must("NetworkDriver.CreateNetwork", createNetworkRequest{NetworkID: "n", Options: generic(map[string]string{"parent": "lan0"})}, nil)
	h.must("NetworkDriver.CreateEndpoint", createEndpointRequest{NetworkID: "n", EndpointID: "e", Interface: &endpointInterface{Address: "10.55.0.2/24"}}, nil)
	var j joinResponse
	h.must("NetworkDriver.Join", joinRequest{NetworkID: "n", EndpointID: "e"}, &j)
	delete(links.links, j.InterfaceName.SrcName) // Docker moved it into the container
	h.must("NetworkDriver.Leave", endpointRequest{NetworkID: "n", EndpointID: "e"}, nil)
	links.links[j.InterfaceName.SrcName] = macvlan.Spec{Master: "lan0"} // and back out
	h.must("NetworkDriver.DeleteEndpoint", endpointRequest{NetworkID: "n", EndpointID: "e"}, nil)
	if got := links.names(); len(got) != 0 {
		t.Errorf("links after DeleteEndpoint = %v, want none", got)
	}
}
