package dockerplugin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/medianet/medianet/ipam"
	"github.com/medianet/medianet/ipam/etcdstore"
)

// ranges returns the prefixes of p that node hands out: its node ranges,
// else the --ip-range, else the whole subnet.
func (p pool) ranges(node string) []netip.Prefix {
	switch {
	case p.Options.NodeRanges != nil:
		return p.Options.NodeRanges[node]
	case p.Range.IsValid():
		return []netip.Prefix{p.Range}
	default:
		return []netip.Prefix{p.Prefix}
	}
}

// ipamConfig is the ipam configuration of pool p as seen by node.
func ipamConfig(p pool, node string) ipam.Config {
	cfg := ipam.Config{
		Network:    p.ipamNet(),
		Subnets:    []ipam.Subnet{{Prefix: p.Prefix, Gateway: p.Gateway}},
		Node:       node,
		NodeRanges: p.Options.NodeRanges,
	}
	if cfg.Network == "" {
		cfg.Network = "validate"
	}
	if p.Prefix.Addr().Is6() {
		cfg.BlockSize6 = p.Options.BlockSize
	} else {
		cfg.BlockSize = p.Options.BlockSize
	}
	return cfg
}

// RequestAddress hands out an address of the pool. A gateway request
// records the gateway (given, or the subnet's first address) without
// allocating it; a request without a MAC option is an --aux-address,
// reserved unless it lies in another node's node-ranges; any other request
// allocates the preferred address (--ip) or the next free one.
//
// The allocation runs without the driver's lock, since it may claim a
// block in etcd; the pool is looked up again afterwards, and an address
// of a pool released meanwhile is given back.
func (d *ipamDriver) RequestAddress(req *requestAddressRequest) (requestAddressResponse, error) {
	a, done, err := d.addressRequest(req)
	if err != nil || done.Address != "" {
		return done, err
	}
	ctx := context.Background()
	if a.mac != nil {
		return d.leaseAddress(ctx, a)
	}
	if a.mustBeFree {
		held, err := d.addrs.Held(ctx, a.p, a.want)
		switch {
		case err != nil:
			return requestAddressResponse{}, d.addressError(a.p, a.want, err)
		case held && slices.Contains(a.p.Aux, a.want):
			return answer(a.p, a.want), nil // the network's aux address, asked again
		case held:
			return requestAddressResponse{}, fmt.Errorf("medianet: address %s of --subnet %s, asked for by the Swarm allocator, is held on node %s: %w", a.want, a.p.Prefix, d.node, ipam.ErrTaken)
		}
	}
	got, err := d.addrs.Allocate(ctx, a.p, d.node, a.holder, a.want)
	if a.p.Etcd && strings.HasPrefix(a.holder, "aux-") && errors.Is(err, ipam.ErrOutOfRange) {
		return answer(a.p, a.want), nil // in another host's block: that host reserves it
	}
	if err != nil {
		return requestAddressResponse{}, d.addressError(a.p, a.want, err)
	}
	if got, err = d.checkConflicts(ctx, a, got); err != nil {
		return requestAddressResponse{}, d.addressError(a.p, a.want, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok, err := d.pool(a.p.ID); err != nil || !ok {
		if err == nil {
			err = d.addrs.Release(ctx, a.p, got)
		}
		return requestAddressResponse{}, fmt.Errorf("medianet: address %s of --subnet %s on node %s: pool %s: %w (%v)", got, a.p.Prefix, d.node, a.p.ID, ErrPoolReleased, err)
	}
	return answer(a.p, got), nil
}

// addressReq is a validated address request, to allocate.
type addressReq struct {
	p      pool
	want   netip.Addr
	holder string
	// mustBeFree: an address the Swarm allocator asks for (a task's on a
	// new leader, a container's --ip on an attachable network) in the
	// global space, where a held address is answered only when it is the
	// network's aux address.
	mustBeFree bool
	// mac is the endpoint's MAC, for a lease of a DHCP pool (dhcp.go).
	mac net.HardwareAddr
}

// addressRequest validates req under d.mu. A request answered at once
// (the gateway, an address another node reserves) comes back in done.
func (d *ipamDriver) addressRequest(req *requestAddressRequest) (a addressReq, done requestAddressResponse, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	p, ok, err := d.pool(req.PoolID)
	if err != nil {
		return a, done, err
	}
	if !ok {
		return a, done, fmt.Errorf("medianet: pool %s on node %s (address %q): %w", req.PoolID, d.node, req.Address, ErrUnknown)
	}
	var want netip.Addr
	if req.Address != "" {
		if want, err = netip.ParseAddr(req.Address); err != nil {
			return a, done, fmt.Errorf("medianet: address %q: %w: %w", req.Address, ErrBadOption, err)
		}
		if !p.Prefix.Contains(want) {
			return a, done, fmt.Errorf("medianet: address %s is outside --subnet %s: %w", want, p.Prefix, ErrOutOfPool)
		}
	}
	if p.Options.DHCP {
		return d.dhcpAddressRequest(req, p, want)
	}
	if req.Options[requestAddressType] == gatewayRequest {
		done, err = d.gateway(p, want)
		return a, done, err
	}
	holder := "docker-" + randomID(8)
	if _, isEndpoint := req.Options[macAddressOption]; !isEndpoint && want.IsValid() {
		mine := slices.ContainsFunc(p.ranges(d.node), func(r netip.Prefix) bool { return r.Contains(want) })
		if p.Options.NodeRanges != nil && !mine {
			return a, answer(p, want), nil // another node's to reserve
		}
		holder = "aux-" + want.String()
	}
	switch {
	case want.IsValid() && want == p.Gateway:
		return a, done, fmt.Errorf("medianet: --ip %s is the gateway of --subnet %s: %w", want, p.Prefix, ErrOutOfPool)
	case slices.Contains(ipam.NetworkAndBroadcast(p.Prefix), want):
		return a, done, fmt.Errorf("medianet: --ip %s is the network or broadcast address of --subnet %s: %w", want, p.Prefix, ErrOutOfPool)
	}
	mustBeFree := p.Space == GlobalAddressSpace && strings.HasPrefix(holder, "aux-")
	return addressReq{p: p, want: want, holder: holder, mustBeFree: mustBeFree}, done, nil
}

func answer(p pool, a netip.Addr) requestAddressResponse {
	return requestAddressResponse{Address: netip.PrefixFrom(a, p.Prefix.Bits()).String()}
}

// gateway records the pool's gateway. It is reserved from then on: the
// allocator never hands it to a container.
func (d *ipamDriver) gateway(p pool, want netip.Addr) (requestAddressResponse, error) {
	if !want.IsValid() {
		want = ipam.DefaultGateway(p.Prefix)
	}
	if slices.Contains(ipam.NetworkAndBroadcast(p.Prefix), want) {
		return requestAddressResponse{}, fmt.Errorf("medianet: --gateway %s is the network or broadcast address of %s: %w", want, p.Prefix, ErrBadOption)
	}
	if p.Gateway != want {
		p.Gateway = want
		err := d.st.db.Update(func(tx *bolt.Tx) error { return put(tx, bucketPools, p.ID, p) })
		if err != nil {
			return requestAddressResponse{}, err
		}
	}
	return answer(p, want), nil
}

// addressError says what to do about an allocation failure.
func (d *ipamDriver) addressError(p pool, want netip.Addr, err error) error {
	switch {
	case errors.Is(err, etcdstore.ErrUnavailable):
		return fmt.Errorf("medianet: --subnet %s: this host's blocks have no free address and no new block can be claimed: %w; try again when etcd is reachable", p.Prefix, err)
	case errors.Is(err, etcdstore.ErrConfigMismatch):
		return fmt.Errorf("medianet: --subnet %s: give every host the same --subnet and --ipam-opt %s: %w", p.Prefix, optBlockSize, err)
	case errors.Is(err, ipam.ErrTaken):
		return fmt.Errorf("medianet: --ip %s is already in use on --subnet %s: %w", want, p.Prefix, err)
	case errors.Is(err, ipam.ErrOutOfRange):
		return fmt.Errorf("medianet: --ip %s is not handed out by this node (--ip-range or node-ranges): %w: %w", want, ErrOutOfPool, err)
	case errors.Is(err, ipam.ErrExhausted):
		return fmt.Errorf("medianet: --subnet %s: no free address left: %w", p.Prefix, err)
	}
	return fmt.Errorf("medianet: pool %s: %w", p.ID, err)
}

// ReleaseAddress frees an address; the gateway, an address never handed
// out and an unknown pool are success.
func (d *ipamDriver) ReleaseAddress(req *releaseAddressRequest) (empty, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	p, ok, err := d.pool(req.PoolID)
	if err != nil || !ok {
		return empty{}, err
	}
	a, err := netip.ParseAddr(req.Address)
	if err != nil {
		return empty{}, fmt.Errorf("medianet: release address %q: %w: %w", req.Address, ErrBadOption, err)
	}
	if a == p.Gateway {
		return empty{}, nil
	}
	if p.Options.DHCP {
		// A lease Leave has not given back: an endpoint that never joined.
		d.mu.Unlock()
		err := (*Driver)(d).releaseLeaseAt(context.Background(), p, a)
		d.mu.Lock()
		return empty{}, err
	}
	if err := d.addrs.Release(context.Background(), p, a); err != nil {
		return empty{}, fmt.Errorf("medianet: release %s of pool %s: %w", a, p.ID, err)
	}
	return empty{}, nil
}
