package dockerplugin

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/medianet/medianet/macvlan"
)

// networkDriver is the NetworkDriver face of a Driver.
type networkDriver Driver

// dstPrefix is the prefix of the container-side interface name: Docker
// renames the link to eth0, eth1, ...
const dstPrefix = "eth"

func (d *networkDriver) GetCapabilities() (capabilitiesResponse, error) {
	// Connectivity is global either way: the containers sit on the LAN.
	return capabilitiesResponse{Scope: d.scope, ConnectivityScope: ScopeGlobal}, nil
}

// AllocateNetwork runs on the Swarm leader for a global-scope driver. The
// options it returns are the only driver options the nodes receive, so it
// validates and echoes them. It binds the network to its global pools
// (bind.go): a network allocated again is the allocator of a new leader
// restoring it.
func (d *networkDriver) AllocateNetwork(req *allocateNetworkRequest) (allocateNetworkResponse, error) {
	if _, err := parseNetOptions(req.Options); err != nil {
		return allocateNetworkResponse{}, err
	}
	ctx := context.Background()
	for _, data := range [][]ipamData{req.IPv4Data, req.IPv6Data} {
		if err := (*Driver)(d).bind(ctx, req.NetworkID, GlobalAddressSpace, data); err != nil {
			return allocateNetworkResponse{}, err
		}
	}
	return allocateNetworkResponse{Options: maps.Clone(req.Options)}, nil
}

// FreeNetwork runs on the Swarm leader when a network is removed, before
// its pools are released.
func (d *networkDriver) FreeNetwork(req *networkIDRequest) (empty, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return empty{}, (*Driver)(d).unbind(req.NetworkID, GlobalAddressSpace)
}

// CreateNetwork validates the options, checks the parent, creates the VLAN
// link when asked, records the network and binds it to its pools. For a
// network it has already, it only binds again (bind.go: Docker forgot the
// network and its endpoints).
func (d *networkDriver) CreateNetwork(req *createNetworkRequest) (empty, error) {
	if err := d.createNetwork(req); err != nil {
		return empty{}, err
	}
	ctx := context.Background()
	for _, data := range [][]ipamData{req.IPv4Data, req.IPv6Data} {
		space := LocalAddressSpace
		if len(data) > 0 && data[0].AddressSpace != "" {
			space = data[0].AddressSpace
		}
		if err := (*Driver)(d).bind(ctx, req.NetworkID, space, data); err != nil {
			return empty{}, err
		}
	}
	return empty{}, nil
}

func (d *networkDriver) createNetwork(req *createNetworkRequest) (retErr error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var have network
	if ok, err := d.view(bucketNetworks, req.NetworkID, &have); err != nil || ok {
		return err
	}
	opts, err := stringOptions(req.Options[genericOptions])
	if err != nil {
		return err
	}
	o, err := parseNetOptions(opts)
	if err != nil {
		return err
	}
	n := network{ID: req.NetworkID, Options: o, Created: d.now()}
	if n.Gateway, err = gatewayOf(req.IPv4Data); err != nil {
		return err
	}
	if n.Gateway6, err = gatewayOf(req.IPv6Data); err != nil {
		return err
	}
	if err := d.links.ParentExists(o.Parent); err != nil {
		return fmt.Errorf("medianet: -o %s=%s: %w: create the interface first or name another one", optParent, o.Parent, err)
	}
	if o.VLAN != 0 {
		if n.CreatedVLAN, err = d.links.EnsureVLAN(o.Parent, o.VLAN); err != nil {
			return fmt.Errorf("medianet: -o %s=%d on %s: %w", optVLAN, o.VLAN, o.Parent, err)
		}
		if n.CreatedVLAN {
			defer func() {
				if retErr != nil {
					_ = d.links.DeleteVLAN(o.master())
				}
			}()
		}
	}
	return d.st.db.Update(func(tx *bolt.Tx) error { return put(tx, bucketNetworks, n.ID, n) })
}

// gatewayOf returns one family's gateway (sent in CIDR form), if any.
func gatewayOf(data []ipamData) (netip.Addr, error) {
	for _, d := range data {
		if d.Gateway == "" {
			continue
		}
		p, err := netip.ParsePrefix(d.Gateway)
		if err != nil {
			return netip.Addr{}, fmt.Errorf("medianet: --gateway %q: %w: %w", d.Gateway, ErrBadOption, err)
		}
		return p.Addr(), nil
	}
	return netip.Addr{}, nil
}

// DeleteNetwork removes the network, any endpoint Docker left (its link
// and its addresses), and the VLAN link when this network created it and
// no other network uses it.
func (d *networkDriver) DeleteNetwork(req *networkIDRequest) (empty, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var n network
	if ok, err := d.view(bucketNetworks, req.NetworkID, &n); err != nil || !ok {
		return empty{}, err
	}
	if err := d.deleteNetwork(n); err != nil {
		return empty{}, err
	}
	// The host's pools only: on the Swarm leader the network keeps its
	// global pool (AllocateNetwork) until FreeNetwork.
	return empty{}, (*Driver)(d).unbind(n.ID, LocalAddressSpace)
}

// deleteNetwork is DeleteNetwork's work on n, under d.mu.
func (d *networkDriver) deleteNetwork(n network) error {
	// Docker deletes a network only once it has no endpoint left, so an
	// endpoint still recorded is one Docker forgot (a dockerd killed with
	// SIGKILL never sends DeleteEndpoint or ReleaseAddress): its address
	// goes back with its link, while the network still binds the pool.
	if err := (*Driver)(d).forgetEndpoints(context.Background(), n.ID); err != nil {
		return fmt.Errorf("medianet: network %s: %w", n.ID, err)
	}
	var heir *network // another network on the same VLAN link
	err := d.st.db.View(func(tx *bolt.Tx) error {
		return each(tx, bucketNetworks, func(o network) error {
			if o.ID != n.ID && o.Options.master() == n.Options.master() && heir == nil {
				heir = &o
			}
			return nil
		})
	})
	if err != nil {
		return err
	}
	if n.CreatedVLAN && heir == nil {
		if err := d.links.DeleteVLAN(n.Options.master()); err != nil && !errors.Is(err, macvlan.ErrInUse) {
			return fmt.Errorf("medianet: network %s: %w", n.ID, err)
		}
	}
	return d.st.db.Update(func(tx *bolt.Tx) error {
		if n.CreatedVLAN && heir != nil {
			heir.CreatedVLAN = true // the last network on the VLAN removes it
			if err := put(tx, bucketNetworks, heir.ID, *heir); err != nil {
				return err
			}
		}
		return del(tx, bucketNetworks, n.ID)
	})
}

// view reads one record in a read transaction.
func (d *networkDriver) view(bucket []byte, key string, v any) (ok bool, err error) {
	err = d.st.db.View(func(tx *bolt.Tx) error {
		ok, err = get(tx, bucket, key, v)
		return err
	})
	return ok, err
}

func (d *networkDriver) lookup(networkID, endpointID string) (network, endpoint, error) {
	var n network
	var e endpoint
	err := d.st.db.View(func(tx *bolt.Tx) error {
		if ok, err := get(tx, bucketNetworks, networkID, &n); err != nil || !ok {
			if err == nil {
				err = fmt.Errorf("medianet: network %s: %w", networkID, ErrUnknown)
			}
			return err
		}
		if endpointID == "" {
			return nil
		}
		ok, err := get(tx, bucketEndpoints, endpointID, &e)
		if err == nil && !ok {
			err = fmt.Errorf("medianet: endpoint %s: %w", endpointID, ErrUnknown)
		}
		return err
	})
	return n, e, err
}

// macFromIP is Docker's own choice of MAC for an IPv4 address, 02:42 and
// the four address bytes, so a container's MAC follows its address.
func macFromIP(a netip.Addr) net.HardwareAddr {
	if !a.Is4() {
		b := net.HardwareAddr{0x02, 0x42, 0, 0, 0, 0}
		_, _ = rand.Read(b[2:])
		return b
	}
	v := a.As4()
	return net.HardwareAddr{0x02, 0x42, v[0], v[1], v[2], v[3]}
}

// linkName is the temporary host-side name of an endpoint's macvlan until
// Docker moves it: "mn" and the endpoint ID's first 11 characters.
func linkName(endpointID string) string {
	id := strings.ToLower(endpointID)
	if len(id) > 11 {
		id = id[:11]
	}
	return "mn" + id
}

// isEndpointLink reports whether name is one linkName gives Docker's
// endpoint IDs (64 hex digits): "mn" and 11 lowercase hex digits.
func isEndpointLink(name string) bool {
	rest, ok := strings.CutPrefix(name, "mn")
	return ok && len(rest) == 11 && strings.Trim(rest, "0123456789abcdef") == ""
}
