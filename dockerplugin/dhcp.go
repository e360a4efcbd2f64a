package dockerplugin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/medianet/medianet/dhcp/dhcpapi"
)

// DHCP mode (--ipam-opt mode=dhcp): a network whose addresses are leases
// from the LAN's DHCP server, kept by medianetd's lease keeper (package
// dhcp, the same that serves the CNI plugins).
//
//   - RequestAddress obtains the lease. Docker passes the endpoint's MAC
//     with it (GetCapabilities asks for it), but the endpoint has no link
//     yet: the keeper runs the exchange on a short-lived macvlan with that
//     MAC on the network's parent, in an anonymous namespace, so the
//     server sees the container's MAC. The lease is keyed by the network
//     and the MAC (Key{Network: network ID, ContainerID: MAC, IfName:
//     "docker"}); its client identifier is "medianet/docker/<network ID's
//     first 12>/<MAC>".
//   - CreateEndpoint records the lease's key on the endpoint (the lease
//     with the endpoint's MAC exists); the lease record, in dhcp.db, stays
//     the owner of the address, its server and times.
//   - Join tells the keeper the container's namespace (SandboxKey), where
//     it finds the link by its MAC and renews from it, and answers the
//     lease's router as the gateway and option 121's routes.
//   - Leave sends RELEASE from the container's link (still in the
//     container, with its address) and forgets the lease; DeleteEndpoint
//     and ReleaseAddress do the same when Leave did not.
//   - Reconcile names every lease after its container: Docker tells a
//     driver no container name, so the reconcile loop reads it from the
//     engine (GET /networks/ID, outside any call of Docker's) and the
//     keeper sends it as the hostname (option 12) in a renewal at once,
//     so the server's lease table shows it within one reconcile period.
//   - Reconcile releases every Docker lease no endpoint record names
//     (staleGrace after it was obtained): endpoints Docker forgot are
//     dropped by the reconcile (reconcile.go), and their leases follow. A
//     RELEASE whose link is gone goes from a short-lived macvlan with the
//     lease's MAC and address on the parent.
//
// Swarm's global scope is refused: the manager allocates for other nodes'
// LANs.

// LeaseKeeper holds DHCP leases for the driver (dhcp.Manager).
type LeaseKeeper interface {
	Acquire(ctx context.Context, req dhcpapi.AcquireRequest) (dhcpapi.Lease, error)
	Attach(ctx context.Context, k dhcpapi.Key, netns string) error
	Release(ctx context.Context, k dhcpapi.Key) error
	Get(k dhcpapi.Key) (dhcpapi.Lease, error)
	List(network string) ([]dhcpapi.Lease, error)
	// SetHostname makes name the lease's option 12 and renews it soon.
	SetHostname(ctx context.Context, k dhcpapi.Key, name string) error
}

// dhcpTimeout bounds one lease's exchange, DISCOVER to ACK: well inside
// Docker's 30 s for a plugin call.
const dhcpTimeout = 10 * time.Second

// anyPool is a DHCP pool's prefix without --subnet: the server decides.
var anyPool = netip.MustParsePrefix("0.0.0.0/0")

// leaseKey names the lease of the endpoint with mac on network id.
func leaseKey(networkID string, mac net.HardwareAddr) dhcpapi.Key {
	return dhcpapi.Key{Network: networkID, ContainerID: mac.String(), IfName: ifName}
}

// dhcpClientID is option 61's name of the endpoint with mac on network id.
func dhcpClientID(networkID string, mac net.HardwareAddr) string {
	return "medianet/docker/" + shortID(networkID) + "/" + mac.String()
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// newDHCPPool validates a pool of --ipam-opt mode=dhcp: IPv4, local
// scope, --subnet optional (a lease outside it is refused), no --ip-range.
func (d *ipamDriver) newDHCPPool(req *requestPoolRequest, o poolOptions) (pool, error) {
	switch {
	case req.V6:
		return pool{}, fmt.Errorf("medianet: --ipam-opt %s=%s: %w: DHCP mode is IPv4 only; drop --ipv6", optIPAMMode, modeDHCP, ErrBadOption)
	case req.AddressSpace == GlobalAddressSpace:
		return pool{}, fmt.Errorf("medianet: --ipam-opt %s=%s: %w: not in Swarm (global) scope, whose manager allocates for other nodes' LANs; use it on standalone hosts", optIPAMMode, modeDHCP, ErrBadOption)
	case req.SubPool != "":
		return pool{}, fmt.Errorf("medianet: --ip-range %s with --ipam-opt %s=%s: %w: the LAN's DHCP server picks the addresses; drop --ip-range", req.SubPool, optIPAMMode, modeDHCP, ErrBadOption)
	}
	p := pool{Space: req.AddressSpace, Prefix: anyPool, Options: o}
	if p.Space == "" {
		p.Space = LocalAddressSpace
	}
	if req.Pool != "" {
		prefix, err := netip.ParsePrefix(req.Pool)
		if err != nil || prefix.Masked() != prefix || !prefix.Addr().Is4() {
			return pool{}, fmt.Errorf("medianet: --subnet %q: %w: give the LAN's IPv4 subnet, e.g. 192.168.100.0/24, or leave it out with --ipam-opt %s=%s", req.Pool, ErrBadOption, optIPAMMode, modeDHCP)
		}
		p.Prefix = prefix
	}
	p.ID = fmt.Sprintf("%s/dhcp/%s/%s", p.Space, p.Prefix, randomID(4))
	return p, nil
}

// dhcpAddressRequest validates an address request of DHCP pool p, under
// d.mu: the gateway is answered at once (the lease's router is the
// containers' gateway; Docker's network gateway is a placeholder),
// --aux-address and --ip are refused.
func (d *ipamDriver) dhcpAddressRequest(req *requestAddressRequest, p pool, want netip.Addr) (addressReq, requestAddressResponse, error) {
	if req.Options[requestAddressType] == gatewayRequest {
		if !want.IsValid() {
			want = p.Prefix.Addr()
		}
		return addressReq{}, requestAddressResponse{Address: netip.PrefixFrom(want, p.Prefix.Bits()).String()}, nil
	}
	macOpt, isEndpoint := req.Options[macAddressOption]
	if !isEndpoint {
		return addressReq{}, requestAddressResponse{}, fmt.Errorf("medianet: --aux-address %s with --ipam-opt %s=%s: %w: the LAN's DHCP server owns the addresses; reserve it there", want, optIPAMMode, modeDHCP, ErrBadOption)
	}
	if want.IsValid() {
		return addressReq{}, requestAddressResponse{}, fmt.Errorf("medianet: --ip %s with --ipam-opt %s=%s: %w: the LAN's DHCP server picks the address; reserve it there for the container's MAC (--mac-address)", want, optIPAMMode, modeDHCP, ErrBadOption)
	}
	mac, err := net.ParseMAC(macOpt)
	if err != nil {
		return addressReq{}, requestAddressResponse{}, fmt.Errorf("medianet: endpoint MAC %q: %w: %w", macOpt, ErrBadOption, err)
	}
	return addressReq{p: p, mac: mac}, requestAddressResponse{}, nil
}

// leaseAddress obtains the lease of an endpoint of DHCP pool a.p on the
// parent of the pool's network, without d.mu. Nothing is left when it
// fails: the keeper records nothing, and the short-lived macvlan goes.
func (d *ipamDriver) leaseAddress(ctx context.Context, a addressReq) (requestAddressResponse, error) {
	if d.leases == nil {
		return requestAddressResponse{}, fmt.Errorf("medianet: --ipam-opt %s=%s: %w: this medianetd keeps no DHCP leases", optIPAMMode, modeDHCP, ErrBadOption)
	}
	n, ok := d.networkOfPool(a.p)
	if !ok {
		return requestAddressResponse{}, fmt.Errorf("medianet: pool %s (--ipam-opt %s=%s) has no network on node %s: %w", a.p.ID, optIPAMMode, modeDHCP, d.node, ErrUnknown)
	}
	k := leaseKey(n.ID, a.mac)
	l, err := d.leases.Acquire(ctx, dhcpapi.AcquireRequest{Key: k, Parent: n.Options.master(), MAC: a.mac.String(),
		Mode: string(n.Options.Mode), ClientID: dhcpClientID(n.ID, a.mac), Timeout: dhcpTimeout})
	if err != nil {
		return requestAddressResponse{}, fmt.Errorf("medianet: --ipam-opt %s=%s: no lease for MAC %s on -o %s=%s: %w", optIPAMMode, modeDHCP, a.mac, optParent, n.Options.master(), err)
	}
	addr, err := netip.ParsePrefix(l.Address)
	if err == nil && a.p.Prefix.Bits() > 0 && !a.p.Prefix.Contains(addr.Addr()) {
		err = fmt.Errorf("server %s leased %s, outside --subnet %s: %w: give the server's subnet, or leave --subnet out", l.Server, addr, a.p.Prefix, ErrOutOfPool)
	}
	if err == nil {
		d.mu.Lock()
		_, ok, err = d.pool(a.p.ID)
		d.mu.Unlock()
		if err == nil && !ok {
			err = fmt.Errorf("pool %s: %w", a.p.ID, ErrPoolReleased)
		}
	}
	if err != nil {
		if rerr := d.leases.Release(ctx, k); rerr != nil {
			err = fmt.Errorf("%w; releasing the lease: %v", err, rerr)
		}
		return requestAddressResponse{}, fmt.Errorf("medianet: --ipam-opt %s=%s on node %s: %w", optIPAMMode, modeDHCP, d.node, err)
	}
	return requestAddressResponse{Address: addr.String()}, nil
}

// networkOfPool returns the network bound to p (a DHCP pool has one).
func (d *ipamDriver) networkOfPool(p pool) (network, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, id := range p.Networks {
		var n network
		if ok, err := (*networkDriver)(d).view(bucketNetworks, id, &n); err == nil && ok {
			return n, true
		}
	}
	return network{}, false
}

// releaseLeaseAt releases the lease of address a on p's networks, if any
// (Docker's ReleaseAddress after an endpoint that never joined). Without
// d.mu.
func (d *Driver) releaseLeaseAt(ctx context.Context, p pool, a netip.Addr) error {
	if d.leases == nil {
		return nil
	}
	for _, id := range p.Networks {
		ls, err := d.leases.List(id)
		if err != nil {
			return err
		}
		for _, l := range ls {
			if pr, err := netip.ParsePrefix(l.Address); err == nil && pr.Addr() == a && l.IfName == ifName {
				return d.leases.Release(ctx, l.Key)
			}
		}
	}
	return nil
}

// joinLease attaches e's lease to the container's namespace and returns
// the gateway and routes it carries. The caller holds d.mu (the keeper
// writes dhcp.db; no network call).
func (d *Driver) joinLease(e endpoint, sandboxKey string, resp *joinResponse) error {
	if e.Lease == nil || d.leases == nil {
		return nil
	}
	l, err := d.leases.Get(*e.Lease)
	if err != nil {
		return fmt.Errorf("medianet: endpoint %s: %w", e.ID, err)
	}
	if sandboxKey != "" {
		if err := d.leases.Attach(context.Background(), *e.Lease, sandboxKey); err != nil {
			return fmt.Errorf("medianet: endpoint %s: %w", e.ID, err)
		}
	}
	resp.Gateway = l.Gateway
	for _, r := range l.Routes {
		dst, err := netip.ParsePrefix(r.Dst)
		switch {
		case err != nil:
			continue
		case dst.Bits() == 0 && r.GW != "":
			if resp.Gateway == "" {
				resp.Gateway = r.GW // option 121's default route stands for option 3
			}
		case r.GW == "":
			resp.StaticRoutes = append(resp.StaticRoutes, staticRoute{Destination: dst.String(), RouteType: routeConnected})
		default:
			resp.StaticRoutes = append(resp.StaticRoutes, staticRoute{Destination: dst.String(), RouteType: routeNextHop, NextHop: r.GW})
		}
	}
	return nil
}

// Route types of Join's StaticRoutes (libnetwork types.NEXTHOP, CONNECTED).
const (
	routeNextHop   = 0
	routeConnected = 1
)

// releaseLease gives back e's lease, if it has one (RELEASE from its
// link, or a short-lived one). Without d.mu: it sends a packet.
func (d *Driver) releaseLease(ctx context.Context, e endpoint) error {
	if e.Lease == nil || d.leases == nil {
		return nil
	}
	if err := d.leases.Release(ctx, *e.Lease); err != nil {
		return fmt.Errorf("medianet: endpoint %s: release its DHCP lease: %w", e.ID, err)
	}
	return nil
}

// releaseOrphanLeases releases every Docker lease no endpoint record
// names, obtained at least staleGrace before now (RequestAddress comes
// before CreateEndpoint). Without d.mu; the endpoints are read under it.
func (d *Driver) releaseOrphanLeases(ctx context.Context, now time.Time) ([]string, error) {
	if d.leases == nil {
		return nil, nil
	}
	ls, err := d.leases.List("")
	if err != nil {
		return nil, err
	}
	named := map[dhcpapi.Key]bool{}
	d.mu.Lock()
	err = d.st.db.View(func(tx *bolt.Tx) error {
		return each(tx, bucketEndpoints, func(e endpoint) error {
			if e.Lease != nil {
				named[*e.Lease] = true
			}
			return nil
		})
	})
	d.mu.Unlock()
	if err != nil {
		return nil, err
	}
	var out []string
	var errs []error
	for _, l := range ls {
		if l.IfName != ifName || named[l.Key] || now.Sub(l.Obtained) < staleGrace {
			continue
		}
		if err := d.leases.Release(ctx, l.Key); err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, l.Network+"/"+l.ContainerID+"@"+l.Address)
	}
	slices.Sort(out)
	return out, errors.Join(errs...)
}

// nameLeases gives every endpoint's lease its container's name as the
// hostname (option 12), from listed (the engine's endpoints of each
// network with their containers' names, asked without d.mu). Without
// d.mu: the keeper renews at once, a network exchange.
func (d *Driver) nameLeases(ctx context.Context, listed map[string]map[string]string) ([]string, error) {
	if d.leases == nil {
		return nil, nil
	}
	want := map[dhcpapi.Key]string{}
	d.mu.Lock()
	err := d.st.db.View(func(tx *bolt.Tx) error {
		return each(tx, bucketEndpoints, func(e endpoint) error {
			if e.Lease == nil {
				return nil
			}
			if h := containerHostname(listed[e.NetworkID][e.ID]); h != "" {
				want[*e.Lease] = h
			}
			return nil
		})
	})
	d.mu.Unlock()
	if err != nil {
		return nil, err
	}
	var out []string
	var errs []error
	for k, h := range want {
		l, err := d.leases.Get(k)
		if err != nil || l.Host == h {
			continue
		}
		if err := d.leases.SetHostname(ctx, k, h); err != nil {
			errs = append(errs, fmt.Errorf("medianet: lease of %s: hostname %q: %w", k.ContainerID, h, err))
			continue
		}
		out = append(out, k.ContainerID+"="+h)
	}
	slices.Sort(out)
	return out, errors.Join(errs...)
}

// containerHostname makes a hostname label (RFC 1123: letters, digits
// and hyphens, at most 63, no hyphen at either end) of a Docker
// container's name ([a-zA-Z0-9][a-zA-Z0-9_.-]*, a leading "/" in some
// API answers): lower case, every other character a hyphen. "" when
// nothing is left.
func containerHostname(name string) string {
	name = strings.TrimPrefix(name, "/")
	b := make([]byte, 0, len(name))
	for _, c := range []byte(strings.ToLower(name)) {
		if (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') {
			b = append(b, c)
		} else {
			b = append(b, '-')
		}
	}
	if len(b) > 63 {
		b = b[:63]
	}
	return strings.Trim(string(b), "-")
}
