package dockerplugin

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/medianet/medianet/dhcp/dhcpapi"
)

// fakeLeases is a LeaseKeeper over a map, handing out 10.9.0.N/24.
type fakeLeases struct {
	mu       sync.Mutex
	leases   map[dhcpapi.Key]dhcpapi.Lease
	reqs     []dhcpapi.AcquireRequest
	attached map[dhcpapi.Key]string
	released []dhcpapi.Key
	fail     error
	next     int
}

func newFakeLeases() *fakeLeases {
	return &fakeLeases{leases: map[dhcpapi.Key]dhcpapi.Lease{}, attached: map[dhcpapi.Key]string{}, next: 7}
}

func (f *fakeLeases) Acquire(_ context.Context, req dhcpapi.AcquireRequest) (dhcpapi.Lease, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reqs = append(f.reqs, req)
	if f.fail != nil {
		return dhcpapi.Lease{}, f.fail
	}
	l := dhcpapi.Lease{Key: req.Key, Address: fmt.Sprintf("10.9.0.%d/24", f.next), Gateway: "10.9.0.1", Server: "10.9.0.2",
		Routes: []dhcpapi.Route{{Dst: "10.10.0.0/16", GW: "10.9.0.3"}}, MAC: req.MAC, Obtained: time.Now(), State: dhcpapi.StateBound}
	f.next++
	f.leases[req.Key] = l
	return l, nil
}

func (f *fakeLeases) Attach(_ context.Context, k dhcpapi.Key, netns string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.leases[k]; !ok {
		return dhcpapi.ErrNotFound
	}
	f.attached[k] = netns
	return nil
}

func (f *fakeLeases) Release(_ context.Context, k dhcpapi.Key) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.leases[k]; ok {
		f.released = append(f.released, k)
		delete(f.leases, k)
	}
	return nil
}

func (f *fakeLeases) SetHostname(_ context.Context, k dhcpapi.Key, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	l, ok := f.leases[k]
	if !ok {
		return dhcpapi.ErrNotFound
	}
	l.Host = name
	f.leases[k] = l
	return nil
}

func (f *fakeLeases) Get(k dhcpapi.Key) (dhcpapi.Lease, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	l, ok := f.leases[k]
	if !ok {
		return l, dhcpapi.ErrNotFound
	}
	return l, nil
}

func (f *fakeLeases) List(network string) ([]dhcpapi.Lease, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []dhcpapi.Lease
	for _, l := range f.leases {
		if network == "" || l.Network == network {
			out = append(out, l)
		}
	}
	return out, nil
}

// dhcpNetwork creates a mode=dhcp pool and its network on lan0.
func dhcpNetwork(h *harness, id string) string {
	h.t.Helper()
	poolID := h.pool("", "", "", map[string]string{"mode": "dhcp"})
	h.must("NetworkDriver.CreateNetwork", createNetworkRequest{NetworkID: id, Options: generic(map[string]string{"parent": "lan0"}),
		IPv4Data: []ipamData{{AddressSpace: LocalAddressSpace, Pool: "0.0.0.0/0", Gateway: "0.0.0.0/0"}}}, nil)
	return poolID
}

// TestDHCPEndpointLifecycle: RequestAddress leases on the network's parent
// with the endpoint's MAC, CreateEndpoint names the lease, Join attaches
// it to the sandbox and answers its router and routes, Leave releases it.
func TestDHCPEndpointLifecycle(t *testing.T) {
	f := newFakeLeases()
	h := newHarness(t, Config{Leases: f}, newFakeLinks("lan0"))
	poolID := dhcpNetwork(h, "n1")
	const mac = "02:42:00:00:00:01"
	got := h.mustAddr(poolID, "")
	if got != "10.9.0.7/24" {
		t.Fatalf("RequestAddress = %q, want the lease 10.9.0.7/24", got)
	}
	req := f.reqs[0]
	if req.Parent != "lan0" || req.MAC != mac || req.Mode != "bridge" || req.Key != leaseKey("n1", mustMAC(t, mac)) ||
		req.ClientID != "medianet/docker/n1/"+mac || req.Timeout != dhcpTimeout {
		t.Fatalf("acquire request %+v", req)
	}
	h.must("NetworkDriver.CreateEndpoint", createEndpointRequest{NetworkID: "n1", EndpointID: "e1", Interface: &endpointInterface{Address: got, MacAddress: mac}}, nil)
	var jr joinResponse
	h.must("NetworkDriver.Join", joinRequest{NetworkID: "n1", EndpointID: "e1", SandboxKey: "/run/docker/netns/abc"}, &jr)
	if jr.Gateway != "10.9.0.1" || len(jr.StaticRoutes) != 1 || jr.StaticRoutes[0] != (staticRoute{Destination: "10.10.0.0/16", RouteType: routeNextHop, NextHop: "10.9.0.3"}) {
		t.Errorf("Join = %+v, want the lease's gateway and route", jr)
	}
	if ns := f.attached[req.Key]; ns != "/run/docker/netns/abc" {
		t.Errorf("lease attached to %q, want the sandbox", ns)
	}
	h.must("NetworkDriver.Leave", endpointRequest{NetworkID: "n1", EndpointID: "e1"}, nil)
	if len(f.released) != 1 || f.released[0] != req.Key {
		t.Fatalf("released %v after Leave, want %v", f.released, req.Key)
	}
	h.must("NetworkDriver.DeleteEndpoint", endpointRequest{NetworkID: "n1", EndpointID: "e1"}, nil)
	h.must("IpamDriver.ReleaseAddress", releaseAddressRequest{PoolID: poolID, Address: "10.9.0.7"}, nil)
	if len(f.released) != 1 {
		t.Errorf("released %v: want one RELEASE", f.released)
	}
}

func mustMAC(t *testing.T, s string) net.HardwareAddr {
	t.Helper()
	m, err := net.ParseMAC(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestDHCPOrphanLeases: a lease no endpoint names (Docker never created
// the endpoint, or forgot it) is released once older than staleGrace;
// a named one stays.
func TestDHCPOrphanLeases(t *testing.T) {
	f := newFakeLeases()
	h := newHarness(t, Config{Leases: f}, newFakeLinks("lan0"))
	poolID := dhcpNetwork(h, "n1")
	named := h.mustAddr(poolID, "")
	h.must("NetworkDriver.CreateEndpoint", createEndpointRequest{NetworkID: "n1", EndpointID: "e1", Interface: &endpointInterface{Address: named, MacAddress: "02:42:00:00:00:01"}}, nil)
	var r requestAddressResponse
	h.must("IpamDriver.RequestAddress", requestAddressRequest{PoolID: poolID, Options: map[string]string{macAddressOption: "02:42:00:00:00:02"}}, &r)
	ctx := context.Background()
	if gone, err := h.d.releaseOrphanLeases(ctx, time.Now()); err != nil || len(gone) != 0 {
		t.Fatalf("young orphan: released %v, %v; want none", gone, err)
	}
	gone, err := h.d.releaseOrphanLeases(ctx, time.Now().Add(2*staleGrace))
	if err != nil || len(gone) != 1 || !strings.HasSuffix(gone[0], "@"+r.Address) {
		t.Fatalf("released %v, %v; want only the orphan %s", gone, err, r.Address)
	}
}

// TestDHCPRefusals: what DHCP mode cannot do is refused naming the option,
// and a failed exchange leaves Docker an error naming mode=dhcp and the
// parent.
func TestDHCPRefusals(t *testing.T) {
	f := newFakeLeases()
	h := newHarness(t, Config{Leases: f}, newFakeLinks("lan0"))
	for _, c := range []struct {
		name string
		req  requestPoolRequest
		want string
	}{
		{"other mode", requestPoolRequest{Options: map[string]string{"mode": "static"}}, "mode=\"static\""},
		{"block size", requestPoolRequest{Options: map[string]string{"mode": "dhcp", "block-size": "28"}}, "--ipam-opt block-size with mode=dhcp"},
		{"ipv6", requestPoolRequest{Pool: "fd00::/64", V6: true, Options: map[string]string{"mode": "dhcp"}}, "IPv4 only"},
		{"ip range", requestPoolRequest{Pool: "10.9.0.0/24", SubPool: "10.9.0.0/28", Options: map[string]string{"mode": "dhcp"}}, "--ip-range"},
		{"swarm", requestPoolRequest{AddressSpace: GlobalAddressSpace, Options: map[string]string{"mode": "dhcp"}}, "Swarm"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := h.call("IpamDriver.RequestPool", c.req, nil)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("RequestPool %+v: %v, want an error saying %q", c.req, err, c.want)
			}
		})
	}
	poolID := dhcpNetwork(h, "n1")
	if _, err := h.addr(poolID, "10.9.0.50"); err == nil || !strings.Contains(err.Error(), "--ip 10.9.0.50 with --ipam-opt mode=dhcp") {
		t.Errorf("--ip: %v", err)
	}
	err := h.call("IpamDriver.RequestAddress", requestAddressRequest{PoolID: poolID, Address: "10.9.0.9"}, nil)
	if err == nil || !strings.Contains(err.Error(), "--aux-address") {
		t.Errorf("--aux-address: %v", err)
	}
	f.fail = fmt.Errorf("lease within 10s: %w: no DHCPOFFER", dhcpapi.ErrNoAnswer)
	_, err = h.addr(poolID, "")
	if err == nil || !strings.Contains(err.Error(), "mode=dhcp") || !strings.Contains(err.Error(), "parent=lan0") || !strings.Contains(err.Error(), "no DHCPOFFER") {
		t.Errorf("no server: %v", err)
	}
	if len(f.leases) != 0 {
		t.Errorf("leases left: %v", f.leases)
	}
	// Two DHCP networks without --subnet have pools of their own.
	p2 := dhcpNetwork(h, "n2")
	if p2 == poolID {
		t.Errorf("second DHCP network shares pool %s", poolID)
	}
	f.fail = nil
	if _, err := h.addr(p2, ""); err != nil || f.reqs[len(f.reqs)-1].Key.Network != "n2" {
		t.Errorf("lease on the second network: %v, request %+v", err, f.reqs[len(f.reqs)-1])
	}
}

// TestDHCPLeaseNames: the reconcile loop gives an endpoint's lease its
// container's name, as the engine lists it, as the hostname; a second
// pass with the same name changes nothing.
func TestDHCPLeaseNames(t *testing.T) {
	f := newFakeLeases()
	h := newHarness(t, Config{Leases: f}, newFakeLinks("lan0"))
	poolID := dhcpNetwork(h, "n1")
	const mac = "02:42:00:00:00:01"
	got := h.mustAddr(poolID, "")
	h.must("NetworkDriver.CreateEndpoint", createEndpointRequest{NetworkID: "n1", EndpointID: "e1", Interface: &endpointInterface{Address: got, MacAddress: mac}}, nil)
	eng := newFakeEngine("n1")
	h.withEngine(eng)
	eng.nameEndpoint("n1", "e1", "Janus_Media.0")
	res, err := h.d.Reconcile(t.Context())
	if err != nil || len(res.Named) != 1 || res.Named[0] != mac+"=janus-media-0" {
		t.Fatalf("Reconcile = %+v, %v; want the lease of %s named janus-media-0", res, err, mac)
	}
	if l, _ := f.Get(leaseKey("n1", mustMAC(t, mac))); l.Host != "janus-media-0" {
		t.Errorf("lease hostname %q, want janus-media-0", l.Host)
	}
	if res, err := h.d.Reconcile(t.Context()); err != nil || len(res.Named) != 0 {
		t.Errorf("second Reconcile = %+v, %v; want nothing named again", res, err)
	}
}

func TestContainerHostname(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"janus-0", "janus-0"},
		{"/Janus_Media.0", "janus-media-0"},
		{"_x_", "x"},
		{"___", ""},
		{strings.Repeat("a", 70), strings.Repeat("a", 63)},
		{strings.Repeat("a", 62) + "_b", strings.Repeat("a", 62)},
	} {
		if got := containerHostname(c.in); got != c.want {
			t.Errorf("containerHostname(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
