package dockerplugin

import (
	"context"
	"fmt"
	"net/netip"
	"slices"

	bolt "go.etcd.io/bbolt"
)

// Binding networks to pools. Docker creates a network in two steps: the
// IPAM driver's RequestPool (and the gateway's RequestAddress), then the
// network driver's CreateNetwork on a host (local space) or, on the Swarm
// leader, AllocateNetwork (global space). The second step names the
// network; bind records it on the pool of each family.
//
// A network bound already is one Docker creates again after forgetting
// it: swarmkit's allocator, starting on a new leader, allocates every
// network again (pool, gateway, aux addresses, AllocateNetwork), then
// requests every live address again; a dockerd that restarted after
// SIGKILL creates a Swarm task's network again (its endpoints were never
// stored, and its containers are dead). Docker does not create a network
// it still knows, so the old addresses are nobody's: a rebind gives them
// back (global: all but the aux addresses just requested again; local:
// the network's endpoints) and takes back the extra RequestPool's
// reference.
//
// A global pool belongs to one Swarm network: a second network asking for
// the same subnet takes it over only when the first was not allocated by
// this leader's allocator, which allocates every network of the cluster
// again when it starts (watch.go): the first was removed while this
// manager was not the leader. Otherwise it is refused, as Docker's own
// IPAM refuses overlapping Swarm networks.

// bind binds network id to its pools in space, one per family of data.
func (d *Driver) bind(ctx context.Context, id, space string, data []ipamData) error {
	for _, f := range data {
		prefix, err := netip.ParsePrefix(f.Pool)
		if err != nil {
			return fmt.Errorf("medianet: network %s: pool %q: %w: %w", id, f.Pool, ErrBadOption, err)
		}
		if err := d.bindPool(ctx, id, space, prefix.Masked(), keepAddrs([]ipamData{f})); err != nil {
			return err
		}
	}
	return nil
}

// bindPool binds id to the pool (space, prefix).
func (d *Driver) bindPool(ctx context.Context, id, space string, prefix netip.Prefix, aux []netip.Addr) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	ps, err := d.pools(func(p pool) bool { return p.Space == space && p.Prefix == prefix })
	if err != nil || len(ps) == 0 {
		return err // no pool of ours: another IPAM driver's network
	}
	p := ps[0]
	if len(ps) > 1 { // DHCP pools, one per network (dhcp.go)
		p = pickPool(ps, id)
	}
	switch {
	case slices.Contains(p.Networks, id):
		return d.rebind(ctx, id, p, aux)
	case space != GlobalAddressSpace:
		p.Networks = append(p.Networks, id) // local pools may be shared
		return d.savePool(p)
	case len(p.Networks) == 0:
		p.Networks, p.Aux, p.Allocated = []string{id}, aux, d.now()
		return d.savePool(p)
	case !d.obsolete(p.Allocated):
		return fmt.Errorf("medianet: --subnet %s of Swarm network %s is already the pool of Swarm network %s (node %s): %w: remove that network or give another subnet",
			prefix, id, p.Networks[0], d.node, ErrPoolOverlap)
	}
	// Every former owner was removed while this manager was not the
	// leader: its addresses are nobody's.
	d.log.Warn("taking over the pool of removed Swarm networks", "subnet", prefix, "network", id, "removed", p.Networks, "node", d.node)
	if err := d.addrs.ReleaseExcept(ctx, p, aux); err != nil {
		return fmt.Errorf("medianet: network %s: release the addresses of removed networks %v in --subnet %s on node %s: %w", id, p.Networks, prefix, d.node, err)
	}
	p.Refs = max(1, p.Refs-len(p.Networks))
	p.Networks, p.Aux, p.Allocated = []string{id}, aux, d.now()
	return d.savePool(p)
}

// pickPool returns the pool of ps bound to id, else the unbound one
// requested last: Docker requests a network's pool just before it
// creates the network.
func pickPool(ps []pool, id string) pool {
	if i := slices.IndexFunc(ps, func(p pool) bool { return slices.Contains(p.Networks, id) }); i >= 0 {
		return ps[i]
	}
	best := -1
	for i, p := range ps {
		if len(p.Networks) == 0 && (best < 0 || p.Requested.After(ps[best].Requested)) {
			best = i
		}
	}
	if best < 0 {
		return ps[0]
	}
	return ps[best]
}

// rebind handles network id created again by Docker (see the top of
// this file).
func (d *Driver) rebind(ctx context.Context, id string, p pool, aux []netip.Addr) error {
	var err error
	if p.Space == GlobalAddressSpace {
		err = d.addrs.ReleaseExcept(ctx, p, aux)
		p.Aux, p.Allocated = aux, d.now()
	} else {
		err = d.forgetEndpoints(ctx, id)
	}
	if err != nil {
		return fmt.Errorf("medianet: network %s created again: release its former addresses in --subnet %s on node %s: %w", id, p.Prefix, d.node, err)
	}
	d.log.Info("network created again by Docker: former addresses given back", "network", id, "pool", p.ID, "node", d.node)
	p.Refs = max(1, p.Refs-1)
	return d.savePool(p)
}

// unbind drops network id from every pool of space (FreeNetwork,
// DeleteNetwork); Docker's ReleasePool frees the pool itself.
func (d *Driver) unbind(id, space string) error {
	ps, err := d.pools(func(p pool) bool { return p.Space == space && slices.Contains(p.Networks, id) })
	if err != nil {
		return err
	}
	for _, p := range ps {
		p.Networks = slices.DeleteFunc(p.Networks, func(s string) bool { return s == id })
		if space == GlobalAddressSpace {
			p.Aux = nil
		}
		if err := d.savePool(p); err != nil {
			return err
		}
	}
	return nil
}

// forgetEndpoints forgets network id's endpoints on this host (see
// forgetEndpoint). The caller holds d.mu.
func (d *Driver) forgetEndpoints(ctx context.Context, id string) error {
	var eps []endpoint
	err := d.st.db.View(func(tx *bolt.Tx) error {
		return each(tx, bucketEndpoints, func(e endpoint) error {
			if e.NetworkID == id {
				eps = append(eps, e)
			}
			return nil
		})
	})
	for _, e := range eps {
		if err != nil {
			break
		}
		err = d.forgetEndpoint(ctx, e)
	}
	return err
}

// forgetEndpoint gives back e's addresses (each in the host's pool bound
// to e's network that holds it: on a Swarm manager the network's global
// pool has the same subnet, and is not the endpoint's), removes any link e
// left, and forgets e. The caller holds d.mu.
func (d *Driver) forgetEndpoint(ctx context.Context, e endpoint) error {
	ps, err := d.pools(func(p pool) bool { return p.Space != GlobalAddressSpace && slices.Contains(p.Networks, e.NetworkID) })
	if err != nil {
		return err
	}
	for _, a := range []netip.Prefix{e.Addr, e.Addr6} {
		i := slices.IndexFunc(ps, func(p pool) bool { return a.IsValid() && p.Prefix.Contains(a.Addr()) })
		if i < 0 {
			continue
		}
		if err := d.addrs.Release(ctx, ps[i], a.Addr()); err != nil {
			return fmt.Errorf("endpoint %s: release %s on node %s: %w", e.ID, a.Addr(), d.node, err)
		}
	}
	if err := d.links.Delete(linkName(e.ID)); err != nil {
		return fmt.Errorf("endpoint %s: %w", e.ID, err)
	}
	return d.st.db.Update(func(tx *bolt.Tx) error { return del(tx, bucketEndpoints, e.ID) })
}
