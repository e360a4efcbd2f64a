package dockerplugin

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Docker does not always release what it asked for: a Swarm manager that
// loses the leadership never releases the cluster's pools (its successor
// does, on its own medianet), and a dockerd killed with SIGKILL forgets
// the networks and endpoints of Swarm tasks without releasing them. State
// therefore follows what the cluster says exists, not what Docker
// remembered to release:
//
//   - every pool records the networks bound to it (bind.go); a local pool
//     is stale when a view of the engine asked for at least staleGrace
//     after it was last requested lists none of them (an unbound pool: no
//     network with its subnet);
//   - a global pool (the Swarm leader's) is obsolete when it was last
//     requested before this node was last seen not leading (watch.go);
//   - a stale or obsolete pool is dropped, with its addresses, when a new
//     pool would overlap it (RequestPool), and the host's stale pools,
//     networks, endpoints and links by Reconcile on a timer;
//   - a network Docker creates again (CreateNetwork, AllocateNetwork of a
//     network already bound) is one Docker forgot: its old addresses are
//     given back at once (bind.go).
//
// The engine is asked only by medianetd's own loops, without the
// driver's lock (watch.go); a view is judged against the time it was
// asked for, never the time its answer arrived: what was created after
// the question cannot be in the answer. When the engine cannot be asked,
// nothing is dropped: a leak is better than a duplicate address.

// staleGrace is how long a pool just requested, or a network or endpoint
// just created, counts as in use whatever a view asked later lists:
// Docker lists a network only once its creation (RequestPool, then
// CreateNetwork or AllocateNetwork) has succeeded.
const staleGrace = 15 * time.Second

// inUse reports whether pool p serves a network of v, or was requested
// too shortly before v was asked for to tell.
func (p pool) inUse(v engineView) bool {
	if v.asked.Sub(p.Requested) < staleGrace {
		return true
	}
	if len(p.Networks) > 0 {
		return slices.ContainsFunc(p.Networks, v.has)
	}
	return v.subnets[p.Prefix]
}

func (d *Driver) loadPool(id string) (p pool, ok bool, err error) {
	err = d.st.db.View(func(tx *bolt.Tx) error {
		ok, err = get(tx, bucketPools, id, &p)
		return err
	})
	return p, ok, err
}

func (d *Driver) savePool(p pool) error {
	return d.st.db.Update(func(tx *bolt.Tx) error { return put(tx, bucketPools, p.ID, p) })
}

// pools returns every pool for which keep is true.
func (d *Driver) pools(keep func(pool) bool) ([]pool, error) {
	var out []pool
	err := d.st.db.View(func(tx *bolt.Tx) error {
		return each(tx, bucketPools, func(p pool) error {
			if keep(p) {
				out = append(out, p)
			}
			return nil
		})
	})
	return out, err
}

// freePool releases every address of p and forgets it; an etcd pool's
// copy stays in bucketEtcdNets until SyncEtcd has given its blocks back.
// The caller holds d.mu.
func (d *Driver) freePool(ctx context.Context, p pool) error {
	if err := d.addrs.ReleaseAll(ctx, p); err != nil {
		return fmt.Errorf("medianet: release pool %s (--subnet %s) on node %s: %w", p.ID, p.Prefix, d.node, err)
	}
	return d.st.db.Update(func(tx *bolt.Tx) error { return del(tx, bucketPools, p.ID) })
}

// ReconcileResult is what one Reconcile did.
type ReconcileResult struct {
	// Pools are the stale pools dropped, with their addresses.
	Pools []string
	// Networks are the networks Docker no longer lists, forgotten with
	// their endpoints and links.
	Networks []string
	// Unbound are "network@pool" bindings of live pools dropped because
	// Docker no longer lists the network; its endpoints' addresses were
	// given back.
	Unbound []string
	// Endpoints are endpoints of live networks that Docker no longer
	// lists on this host (their containers died with a killed dockerd),
	// forgotten with their addresses.
	Endpoints []string
	// Links are endpoint links left in the host namespace (named as Join
	// names them) of endpoints medianet no longer records, removed.
	Links []string
	// Alive are endpoints the view said gone (with their network or pool)
	// whose link is still in a container's namespace: kept, with their
	// network and pool. A view can be wrong; the kernel is not.
	Alive []string
	// Leases are the DHCP leases released because no endpoint names them
	// ("network/MAC@address"; dhcp.go).
	Leases []string
	// Named are the DHCP leases given their container's name as hostname
	// ("MAC=name"; dhcp.go).
	Named []string
}

// Reconcile compares the host's state with what the engine lists and
// drops what Docker forgot to release (see the top of this file): pools
// of the host's address space, networks, endpoints, and endpoint links
// left in the host namespace. Global pools are left to RequestPool. The
// engine is asked first, without the lock, and everything is judged
// against the time it was asked for. medianetd runs it on a timer
// (Config.ReconcileInterval).
func (d *Driver) Reconcile(ctx context.Context) (ReconcileResult, error) {
	var res ReconcileResult
	if d.eng == nil {
		return res, fmt.Errorf("%w: medianetd runs without a Docker engine socket", ErrEngineUnavailable)
	}
	asked := d.now()
	v, err := d.eng.Networks(ctx)
	if err != nil {
		return res, err
	}
	v.asked = asked
	listed, err := d.listedEndpoints(ctx, v)
	if err != nil {
		return res, err
	}
	res, err = d.reconcileLocked(ctx, v, listed)
	if err != nil {
		return res, err
	}
	res.Leases, err = d.releaseOrphanLeases(ctx, asked)
	if err != nil {
		return res, err
	}
	res.Named, err = d.nameLeases(ctx, listed)
	return res, err
}

// has reports whether endpoint id is listed in eps.
func has(eps map[string]string, id string) bool {
	_, ok := eps[id]
	return ok
}

// reconcileLocked is Reconcile's work under d.mu.
func (d *Driver) reconcileLocked(ctx context.Context, v engineView, listed map[string]map[string]string) (ReconcileResult, error) {
	var res ReconcileResult
	d.mu.Lock()
	defer d.mu.Unlock()
	d.recordView(v)
	all, err := d.pools(func(pool) bool { return true })
	if err != nil {
		return res, err
	}
	for _, p := range all {
		if p.Space == GlobalAddressSpace {
			// The leader's allocator's: judged when a new pool overlaps
			// it (RequestPool), by the leadership (watch.go).
			continue
		}
		if !p.inUse(v) {
			if alive := d.aliveOn(p.Networks...); len(alive) > 0 {
				res.Alive = append(res.Alive, alive...)
				continue
			}
			if err := d.freePool(ctx, p); err != nil {
				return res, err
			}
			res.Pools = append(res.Pools, p.ID)
			continue
		}
		gone, err := d.unbindGone(ctx, p, v, &res)
		if err != nil {
			return res, err
		}
		res.Unbound = append(res.Unbound, gone...)
	}
	if res.Networks, err = d.dropGoneNetworks(v, &res); err != nil {
		return res, err
	}
	if res.Endpoints, err = d.dropGoneEndpoints(ctx, listed, v.asked, &res); err != nil {
		return res, err
	}
	res.Links, err = d.dropOrphanLinks()
	slices.Sort(res.Alive)
	res.Alive = slices.Compact(res.Alive)
	return res, err
}

// listedEndpoints asks the engine, without the lock, about every network
// the host has records of (networks, endpoints, bindings of its own
// pools), one at a time (GET /networks/ID), and returns the endpoints of
// each it has. A network it has is added to v even when its listing left
// the network out (a Swarm manager's listing does while the Swarm has no
// leader); a network it could not be asked about is added too, its
// endpoints left out: nothing of it is judged.
func (d *Driver) listedEndpoints(ctx context.Context, v engineView) (map[string]map[string]string, error) {
	nets := map[string]bool{}
	d.mu.Lock()
	err := d.st.db.View(func(tx *bolt.Tx) error {
		err := each(tx, bucketNetworks, func(n network) error { nets[n.ID] = true; return nil })
		if err == nil {
			err = each(tx, bucketEndpoints, func(e endpoint) error { nets[e.NetworkID] = true; return nil })
		}
		if err == nil {
			err = each(tx, bucketPools, func(p pool) error {
				for _, id := range p.Networks {
					nets[id] = nets[id] || p.Space != GlobalAddressSpace
				}
				return nil
			})
		}
		return err
	})
	d.mu.Unlock()
	if err != nil {
		return nil, err
	}
	out := map[string]map[string]string{}
	for id, ask := range nets {
		if !ask {
			continue
		}
		eps, found, err := d.eng.Endpoints(ctx, id)
		switch {
		case err != nil:
			v.ids[id] = true
		case found:
			v.ids[id] = true
			out[id] = eps
		}
	}
	return out, nil
}

// dropGoneNetworks forgets the network records (with their endpoints and
// links) of networks the engine no longer lists.
func (d *Driver) dropGoneNetworks(v engineView, res *ReconcileResult) ([]string, error) {
	var stale []network
	err := d.st.db.View(func(tx *bolt.Tx) error {
		return each(tx, bucketNetworks, func(n network) error {
			if !v.has(n.ID) && v.asked.Sub(n.Created) >= staleGrace {
				stale = append(stale, n)
			}
			return nil
		})
	})
	stale = slices.DeleteFunc(stale, func(n network) bool {
		alive := d.aliveOn(n.ID)
		res.Alive = append(res.Alive, alive...)
		return len(alive) > 0
	})
	var out []string
	for _, n := range stale {
		if err != nil {
			break
		}
		if err = (*networkDriver)(d).deleteNetwork(n); err == nil {
			out = append(out, n.ID)
		}
	}
	return out, err
}

// dropGoneEndpoints forgets, with their addresses and links, the
// endpoints created staleGrace before asked that the engine does not list
// on a network it was asked about (after asked).
func (d *Driver) dropGoneEndpoints(ctx context.Context, listed map[string]map[string]string, asked time.Time, res *ReconcileResult) ([]string, error) {
	var stale []endpoint
	err := d.st.db.View(func(tx *bolt.Tx) error {
		return each(tx, bucketEndpoints, func(e endpoint) error {
			if eps, ok := listed[e.NetworkID]; ok && !has(eps, e.ID) && asked.Sub(e.Created) >= staleGrace {
				if d.alive(e) {
					res.Alive = append(res.Alive, e.ID)
				} else {
					stale = append(stale, e)
				}
			}
			return nil
		})
	})
	var out []string
	for _, e := range stale {
		if err != nil {
			break
		}
		if err = d.forgetEndpoint(ctx, e); err == nil {
			out = append(out, e.ID)
		}
	}
	return out, err
}

// unbindGone drops from the live pool p the networks the engine no
// longer lists, giving back their endpoints' addresses on this host. A
// pool requested within staleGrace of the view is left alone: its newest
// network may not be listed yet.
func (d *Driver) unbindGone(ctx context.Context, p pool, v engineView, res *ReconcileResult) ([]string, error) {
	if v.asked.Sub(p.Requested) < staleGrace {
		return nil, nil
	}
	var out []string
	for _, id := range p.Networks {
		if v.has(id) {
			continue
		}
		if alive := d.aliveOn(id); len(alive) > 0 {
			res.Alive = append(res.Alive, alive...)
			continue
		}
		if err := d.forgetEndpoints(ctx, id); err != nil {
			return out, err
		}
		p.Networks = slices.DeleteFunc(p.Networks, func(s string) bool { return s == id })
		p.Refs = max(1, p.Refs-1)
		out = append(out, id+"@"+p.ID)
	}
	if len(out) > 0 {
		return out, d.savePool(p)
	}
	return nil, nil
}

// alive reports whether e's link is in a container's namespace (a link
// with its MAC). The caller holds d.mu.
func (d *Driver) alive(e endpoint) bool {
	mac, err := net.ParseMAC(e.MAC)
	if err != nil {
		return false
	}
	ok, err := d.links.Alive(mac)
	return err == nil && ok
}

// aliveOn lists the endpoints of networks ids whose link is in a
// container's namespace. The caller holds d.mu.
func (d *Driver) aliveOn(ids ...string) []string {
	var out []string
	_ = d.st.db.View(func(tx *bolt.Tx) error {
		return each(tx, bucketEndpoints, func(e endpoint) error {
			if slices.Contains(ids, e.NetworkID) && d.alive(e) {
				out = append(out, e.ID)
			}
			return nil
		})
	})
	return out
}

// dropOrphanLinks removes the endpoint links (named as Join names them)
// in the host namespace whose endpoint medianet does not record: Docker
// moves an endpoint's link back out of the container before
// DeleteEndpoint, so a link of an endpoint forgotten meanwhile would stay.
// The caller holds d.mu.
func (d *Driver) dropOrphanLinks() ([]string, error) {
	names, err := d.links.List()
	if err != nil {
		return nil, fmt.Errorf("medianet: list links on node %s: %w", d.node, err)
	}
	mine := map[string]bool{}
	err = d.st.db.View(func(tx *bolt.Tx) error {
		return each(tx, bucketEndpoints, func(e endpoint) error { mine[linkName(e.ID)] = true; return nil })
	})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range names {
		if !isEndpointLink(n) || mine[n] {
			continue
		}
		if err := d.links.Delete(n); err != nil {
			return out, fmt.Errorf("medianet: orphan link %s on node %s: %w", n, d.node, err)
		}
		out = append(out, n)
	}
	return out, nil
}

// keepAddrs lists the addresses of data's aux addresses (--aux-address).
func keepAddrs(data []ipamData) []netip.Addr {
	var out []netip.Addr
	for _, f := range data {
		for _, a := range f.AuxAddresses {
			s, _ := a.(string)
			if p, err := netip.ParsePrefix(s); err == nil {
				out = append(out, p.Addr())
			} else if a, err := netip.ParseAddr(s); err == nil {
				out = append(out, a)
			}
		}
	}
	return out
}
