package dockerplugin

import (
	"context"
	"errors"
	"fmt"
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
func (d *ipamDriver) RequestAddress(req *requestAddressRequest) (requestAddressResponse, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	p, ok, err := d.pool(req.PoolID)
	if err != nil {
		return requestAddressResponse{}, err
	}
	if !ok {
		return requestAddressResponse{}, fmt.Errorf("medianet: pool %s: %w", req.PoolID, ErrUnknown)
	}
	var want netip.Addr
	if req.Address != "" {
		if want, err = netip.ParseAddr(req.Address); err != nil {
			return requestAddressResponse{}, fmt.Errorf("medianet: address %q: %w: %w", req.Address, ErrBadOption, err)
		}
		if !p.Prefix.Contains(want) {
			return requestAddressResponse{}, fmt.Errorf("medianet: address %s is outside --subnet %s: %w", want, p.Prefix, ErrOutOfPool)
		}
	}
	if req.Options[requestAddressType] == gatewayRequest {
		return d.gateway(p, want)
	}
	holder := "docker-" + randomID(8)
	if _, isEndpoint := req.Options[macAddressOption]; !isEndpoint && want.IsValid() {
		mine := slices.ContainsFunc(p.ranges(d.node), func(r netip.Prefix) bool { return r.Contains(want) })
		if p.Options.NodeRanges != nil && !mine {
			return answer(p, want), nil // another node's to reserve
		}
		holder = "aux-" + want.String()
	}
	switch {
	case want.IsValid() && want == p.Gateway:
		return requestAddressResponse{}, fmt.Errorf("medianet: --ip %s is the gateway of --subnet %s: %w", want, p.Prefix, ErrOutOfPool)
	case slices.Contains(ipam.NetworkAndBroadcast(p.Prefix), want):
		return requestAddressResponse{}, fmt.Errorf("medianet: --ip %s is the network or broadcast address of --subnet %s: %w", want, p.Prefix, ErrOutOfPool)
	}
	got, err := d.addrs.Allocate(context.Background(), p, d.node, holder, want)
	if p.Etcd && strings.HasPrefix(holder, "aux-") && errors.Is(err, ipam.ErrOutOfRange) {
		return answer(p, want), nil // in another host's block: that host reserves it
	}
	if err != nil {
		return requestAddressResponse{}, addressError(p, want, err)
	}
	return answer(p, got), nil
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
func addressError(p pool, want netip.Addr, err error) error {
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
	if err := d.addrs.Release(context.Background(), p, a); err != nil {
		return empty{}, fmt.Errorf("medianet: release %s of pool %s: %w", a, p.ID, err)
	}
	return empty{}, nil
}
