package dockerplugin

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/medianet/medianet/macvlan"
)

// CreateEndpoint records the endpoint's addresses (allocated before by the
// IPAM driver) and picks its MAC when Docker did not. Repeating it returns
// the same answer.
func (d *networkDriver) CreateEndpoint(req *createEndpointRequest) (createEndpointResponse, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, _, err := d.lookup(req.NetworkID, ""); err != nil {
		return createEndpointResponse{}, err
	}
	var e endpoint
	if ok, err := d.view(bucketEndpoints, req.EndpointID, &e); err != nil {
		return createEndpointResponse{}, err
	} else if ok {
		return endpointResponse(e, req.Interface), nil
	}
	e = endpoint{ID: req.EndpointID, NetworkID: req.NetworkID, Created: d.now()}
	in := req.Interface
	if in == nil {
		in = &endpointInterface{}
	}
	var err error
	if e.Addr, err = parseOptionalPrefix(in.Address); err != nil {
		return createEndpointResponse{}, err
	}
	if e.Addr6, err = parseOptionalPrefix(in.AddressIPv6); err != nil {
		return createEndpointResponse{}, err
	}
	if !e.Addr.IsValid() && !e.Addr6.IsValid() {
		return createEndpointResponse{}, fmt.Errorf("medianet: endpoint %s has no address: %w: use --ipam-driver medianet or give --subnet", e.ID, ErrBadOption)
	}
	switch {
	case in.MacAddress != "":
		if _, err := net.ParseMAC(in.MacAddress); err != nil {
			return createEndpointResponse{}, fmt.Errorf("medianet: --mac-address %q: %w: %w", in.MacAddress, ErrBadOption, err)
		}
		e.MAC = in.MacAddress
	case e.Addr.IsValid():
		e.MAC = macFromIP(e.Addr.Addr()).String()
	default:
		e.MAC = macFromIP(e.Addr6.Addr()).String()
	}
	if mac, err := net.ParseMAC(e.MAC); err == nil && d.leases != nil {
		k := leaseKey(e.NetworkID, mac)
		if _, err := d.leases.Get(k); err == nil {
			e.Lease = &k // RequestAddress leased the address (dhcp.go)
		}
	}
	err = d.st.db.Update(func(tx *bolt.Tx) error { return put(tx, bucketEndpoints, e.ID, e) })
	if err != nil {
		return createEndpointResponse{}, err
	}
	return endpointResponse(e, req.Interface), nil
}

// endpointResponse fills only what Docker left empty (it refuses a driver
// that changes a field it set).
func endpointResponse(e endpoint, in *endpointInterface) createEndpointResponse {
	if in != nil && in.MacAddress != "" {
		return createEndpointResponse{}
	}
	return createEndpointResponse{Interface: &endpointInterface{MacAddress: e.MAC}}
}

func parseOptionalPrefix(s string) (netip.Prefix, error) {
	if s == "" {
		return netip.Prefix{}, nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return p, fmt.Errorf("medianet: endpoint address %q: %w: %w", s, ErrBadOption, err)
	}
	return p, nil
}

// DeleteEndpoint forgets the endpoint and removes its link, which Docker
// has moved back to the host namespace by now. The link's name follows
// from the endpoint's ID, so it is removed also when medianet no longer
// records the endpoint (forgotten by Reconcile or DeleteNetwork while
// Docker still had it). An unknown endpoint is success.
func (d *networkDriver) DeleteEndpoint(req *endpointRequest) (empty, error) {
	e, err := d.deleteEndpoint(req)
	if err == nil {
		err = (*Driver)(d).releaseLease(context.Background(), e)
	}
	return empty{}, err
}

// deleteEndpoint is DeleteEndpoint's work under d.mu; it returns the
// endpoint it forgot, whose lease goes after the lock.
func (d *networkDriver) deleteEndpoint(req *endpointRequest) (endpoint, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.links.Delete(linkName(req.EndpointID)); err != nil {
		return endpoint{}, fmt.Errorf("medianet: endpoint %s: %w", req.EndpointID, err)
	}
	var e endpoint
	err := d.st.db.Update(func(tx *bolt.Tx) error {
		if _, err := get(tx, bucketEndpoints, req.EndpointID, &e); err != nil {
			return err
		}
		return del(tx, bucketEndpoints, req.EndpointID)
	})
	return e, err
}

func (d *networkDriver) EndpointInfo(req *endpointRequest) (endpointInfoResponse, error) {
	n, e, err := d.lookup(req.NetworkID, req.EndpointID)
	if err != nil {
		return endpointInfoResponse{}, err
	}
	v := map[string]string{"mac": e.MAC, "parent": n.Options.master(), "mode": string(n.Options.Mode)}
	if e.Addr.IsValid() {
		v["address"] = e.Addr.String()
	}
	if e.Addr6.IsValid() {
		v["addressIPv6"] = e.Addr6.String()
	}
	return endpointInfoResponse{Value: v}, nil
}

// Join creates the endpoint's macvlan in the host namespace under a
// temporary name derived from the endpoint ID (so nothing needs storing);
// Docker moves it into the container, renames it and sets its addresses.
// Joining again replaces a link left by a failed attempt.
func (d *networkDriver) Join(req *joinRequest) (joinResponse, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	n, e, err := d.lookup(req.NetworkID, req.EndpointID)
	if err != nil {
		return joinResponse{}, err
	}
	mac, err := net.ParseMAC(e.MAC)
	if err != nil {
		return joinResponse{}, fmt.Errorf("medianet: endpoint %s: mac %q: %w", e.ID, e.MAC, err)
	}
	name := linkName(e.ID)
	if err := d.links.Delete(name); err != nil {
		return joinResponse{}, fmt.Errorf("medianet: endpoint %s: %w", e.ID, err)
	}
	spec := macvlan.Spec{Master: n.Options.master(), Mode: n.Options.Mode, MAC: mac}
	if err := d.links.Create(spec, name); err != nil {
		return joinResponse{}, fmt.Errorf("medianet: endpoint %s on -o %s=%s: %w", e.ID, optParent, spec.Master, err)
	}
	resp := joinResponse{
		InterfaceName:         interfaceName{SrcName: name, DstPrefix: dstPrefix},
		DisableGatewayService: true,
	}
	if n.Gateway.IsValid() && e.Addr.IsValid() {
		resp.Gateway = n.Gateway.String()
	}
	if n.Gateway6.IsValid() && e.Addr6.IsValid() {
		resp.GatewayIPv6 = n.Gateway6.String()
	}
	if e.Lease != nil {
		if err := (*Driver)(d).joinLease(e, req.SandboxKey, &resp); err != nil {
			_ = d.links.Delete(name)
			return joinResponse{}, err
		}
	}
	if an, ok := d.links.(lateAnnouncer); ok && req.SandboxKey != "" {
		var addrs []netip.Addr
		for _, p := range []netip.Prefix{e.Addr, e.Addr6} {
			if p.IsValid() {
				addrs = append(addrs, p.Addr())
			}
		}
		// Announce at once from the parent, with the endpoint's MAC, so
		// the LAN drops a reused address's old MAC whether or not this
		// process can open the container's namespace; then, since Docker
		// configures the link after this returns, again from the link
		// once it is configured (the parent's own sends do not reach the
		// other macvlans on it). In the background, bounded.
		go func(log *slog.Logger, key, parent string) {
			if err := an.AnnounceFor(parent, mac, addrs); err != nil {
				log.Warn("endpoint not announced from its parent", "endpoint", e.ID, "parent", parent, "error", err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), announceWithin)
			defer cancel()
			if err := an.AnnounceWhenConfigured(ctx, key, mac, addrs); err != nil {
				log.Warn("endpoint not announced from its container: is Docker's netns directory mounted for medianetd?",
					"endpoint", e.ID, "sandbox", key, "error", err)
			}
		}(d.log, req.SandboxKey, spec.Master)
	}
	return resp, nil
}

// lateAnnouncer is implemented by link makers that can announce an
// endpoint's addresses from its parent (macvlan's AnnounceFor) and once
// Docker has configured its link (AnnounceWhenConfigured): a gratuitous
// ARP and an unsolicited neighbour advertisement, so that the LAN learns
// a reused address's new MAC at once, as the CNI plugin's links do
// through arp_notify.
type lateAnnouncer interface {
	AnnounceFor(parent string, mac net.HardwareAddr, addrs []netip.Addr) error
	AnnounceWhenConfigured(ctx context.Context, nsPath string, mac net.HardwareAddr, addrs []netip.Addr) error
}

// announceWithin bounds the wait for Docker to configure a joined link.
const announceWithin = 30 * time.Second

// Leave deletes the endpoint's link if it is still in the host namespace.
// Docker calls Leave before it moves the link back out of the container
// under its temporary name, so DeleteEndpoint deletes it again. An
// endpoint's DHCP lease is released now, from its link still in the
// container with the address (RELEASE unicast, RFC 2131).
func (d *networkDriver) Leave(req *endpointRequest) (empty, error) {
	d.mu.Lock()
	if err := d.links.Delete(linkName(req.EndpointID)); err != nil {
		d.mu.Unlock()
		return empty{}, fmt.Errorf("medianet: endpoint %s: %w", req.EndpointID, err)
	}
	var e endpoint
	_, err := d.view(bucketEndpoints, req.EndpointID, &e)
	d.mu.Unlock()
	if err == nil {
		err = (*Driver)(d).releaseLease(context.Background(), e)
	}
	return empty{}, err
}
