package dockerplugin

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Docker does not always release what it asked for: a Swarm manager that
// loses the leadership never releases the cluster's pools (its successor
// does, on its own medianet), and a dockerd killed with SIGKILL forgets
// the networks and endpoints of Swarm tasks without releasing them. State
// therefore follows what the engine says exists, not what Docker
// remembered to release:
//
//   - every pool records the networks bound to it (bind.go); a pool is
//     stale when the engine lists none of them (an unbound pool: no
//     network with its subnet), and it was not requested in the last
//     staleGrace;
//   - a stale pool is dropped, with its addresses, when a new pool would
//     overlap it (RequestPool), and, for the host's own pools, by
//     Reconcile on a timer;
//   - a network Docker creates again (CreateNetwork, AllocateNetwork of a
//     network already bound) is one Docker forgot: its old addresses are
//     given back at once (bind.go).
//
// The engine is asked without the driver's lock; what it says is applied
// under the lock to state that has not changed since. When it cannot be
// asked, nothing is dropped: a leak is better than a duplicate address.

// staleGrace is how long a pool just requested, or a network just
// created, counts as in use whatever the engine lists: Docker lists a
// network only once its creation (RequestPool, then CreateNetwork or
// AllocateNetwork) has succeeded.
const staleGrace = 15 * time.Second

// swarmViewTries bounds how many more times (a second apart) the engine
// is asked for a view a Swarm pool can be judged by: one taken while the
// Swarm's control answered (dropStale), or listing the network being
// allocated (bindPool).
const swarmViewTries = 10

// inUse reports whether pool p serves a network of v, or is too young to
// tell.
func (p pool) inUse(v engineView, now time.Time) bool {
	if now.Sub(p.Requested) < staleGrace {
		return true
	}
	if len(p.Networks) > 0 {
		return slices.ContainsFunc(p.Networks, v.has)
	}
	return v.subnets[p.Prefix]
}

// same reports whether p is the pool o was, unchanged: a pool changed
// since the engine was asked is judged again later.
func (p pool) same(o pool) bool {
	return p.ID == o.ID && p.Refs == o.Refs && p.Requested.Equal(o.Requested) && slices.Equal(p.Networks, o.Networks)
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

// dropStale asks the engine about cands (without the lock) and drops
// those stale and unchanged since, for a new pool of subnet p. It returns
// the pools kept, and the engine's error when it could not be asked (then
// every pool is kept).
//
// For a global pool the engine's Swarm control must answer around the
// listing (engineView.control): a manager whose control does not answer
// lists only its host's networks, and every Swarm network would look
// gone. (The Swarm network being created cannot tell: dockerd lists it
// without a subnet until its pool is allocated.) The engine is asked
// again up to tries times, a second apart (a leader just elected):
// swarmkit's allocator, which waits meanwhile, does not retry a failed
// network soon.
func (d *Driver) dropStale(ctx context.Context, p pool, cands []pool, tries int) ([]pool, error) {
	if d.eng == nil {
		return cands, fmt.Errorf("%w: medianetd runs without a Docker engine socket", ErrEngineUnavailable)
	}
	v, err := d.swarmView(ctx, tries, func(v engineView) bool { return p.Space != GlobalAddressSpace || v.control })
	if err != nil {
		return cands, err
	}
	if p.Space == GlobalAddressSpace && !v.control {
		return cands, fmt.Errorf("%w: it lists %d networks (Swarm's: %t) but its Swarm control does not answer (GET /swarm): not a manager, or no leader",
			ErrEngineUnavailable, len(v.ids), v.swarm)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	var kept []pool
	for _, c := range cands {
		cur, ok, err := d.loadPool(c.ID)
		switch {
		case err != nil:
			return cands, err
		case !ok: // released meanwhile
		case !cur.same(c) || cur.inUse(v, now):
			kept = append(kept, cur)
		default:
			if err := d.freePool(ctx, cur); err != nil {
				return cands, err
			}
			d.log.Warn("dropped a stale pool: Docker no longer lists a network using it", "pool", cur.ID, "subnet", cur.Prefix, "networks", cur.Networks, "node", d.node)
		}
	}
	return kept, nil
}

// swarmView asks the engine for its networks, again up to tries times a
// second apart while complete says the view lacks the Swarm's networks.
func (d *Driver) swarmView(ctx context.Context, tries int, complete func(engineView) bool) (engineView, error) {
	v, err := d.eng.Networks(ctx)
	for try := 0; err == nil && !complete(v) && try < tries; try++ {
		select {
		case <-ctx.Done():
			return v, ctx.Err()
		case <-time.After(time.Second):
		}
		v, err = d.eng.Networks(ctx)
	}
	return v, err
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
}

// Reconcile compares the host's state with what the engine lists and
// drops what Docker forgot to release (see the top of this file): pools
// of the host's address space, networks, endpoints. Global pools are left
// to dropStale. The engine is asked first, without the lock. medianetd
// runs it on a timer (Config.ReconcileInterval).
func (d *Driver) Reconcile(ctx context.Context) (ReconcileResult, error) {
	var res ReconcileResult
	if d.eng == nil {
		return res, fmt.Errorf("%w: medianetd runs without a Docker engine socket", ErrEngineUnavailable)
	}
	v, err := d.eng.Networks(ctx)
	if err != nil {
		return res, err
	}
	listed, err := d.listedEndpoints(ctx, v)
	if err != nil {
		return res, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	all, err := d.pools(func(pool) bool { return true })
	if err != nil {
		return res, err
	}
	for _, p := range all {
		if p.Space == GlobalAddressSpace {
			// The leader's allocator's: judged only when a new pool
			// overlaps it (dropStale), never on a view that may lack
			// the cluster's networks.
			continue
		}
		if !p.inUse(v, now) {
			if err := d.freePool(ctx, p); err != nil {
				return res, err
			}
			res.Pools = append(res.Pools, p.ID)
			continue
		}
		gone, err := d.unbindGone(ctx, p, v, now)
		if err != nil {
			return res, err
		}
		res.Unbound = append(res.Unbound, gone...)
	}
	if res.Networks, err = d.dropGoneNetworks(v, now); err != nil {
		return res, err
	}
	res.Endpoints, err = d.dropGoneEndpoints(ctx, listed, now)
	return res, err
}

// listedEndpoints asks the engine, without the lock, for the endpoints of
// each listed network this host has endpoint records of. A network the
// engine could not be asked about is left out (its endpoints are kept).
func (d *Driver) listedEndpoints(ctx context.Context, v engineView) (map[string]map[string]bool, error) {
	nets := map[string]bool{}
	d.mu.Lock()
	err := d.st.db.View(func(tx *bolt.Tx) error {
		return each(tx, bucketEndpoints, func(e endpoint) error { nets[e.NetworkID] = v.has(e.NetworkID); return nil })
	})
	d.mu.Unlock()
	if err != nil {
		return nil, err
	}
	out := map[string]map[string]bool{}
	for id, listed := range nets {
		if !listed {
			continue // dropGoneNetworks or unbindGone forgets them
		}
		if eps, err := d.eng.Endpoints(ctx, id); err == nil {
			out[id] = eps
		}
	}
	return out, nil
}

// dropGoneNetworks forgets the network records (with their endpoints and
// links) of networks the engine no longer lists.
func (d *Driver) dropGoneNetworks(v engineView, now time.Time) ([]string, error) {
	var stale []network
	err := d.st.db.View(func(tx *bolt.Tx) error {
		return each(tx, bucketNetworks, func(n network) error {
			if !v.has(n.ID) && now.Sub(n.Created) >= staleGrace {
				stale = append(stale, n)
			}
			return nil
		})
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
// endpoints older than staleGrace that the engine does not list on a
// network it was asked about.
func (d *Driver) dropGoneEndpoints(ctx context.Context, listed map[string]map[string]bool, now time.Time) ([]string, error) {
	var stale []endpoint
	err := d.st.db.View(func(tx *bolt.Tx) error {
		return each(tx, bucketEndpoints, func(e endpoint) error {
			if eps, asked := listed[e.NetworkID]; asked && !eps[e.ID] && now.Sub(e.Created) >= staleGrace {
				stale = append(stale, e)
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
// pool requested within staleGrace is left alone: its newest network may
// not be listed yet.
func (d *Driver) unbindGone(ctx context.Context, p pool, v engineView, now time.Time) ([]string, error) {
	if now.Sub(p.Requested) < staleGrace {
		return nil, nil
	}
	var out []string
	for _, id := range p.Networks {
		if v.has(id) {
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

// startLoop runs Reconcile every interval until Close.
func (d *Driver) startLoop(interval time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	d.stopLoop, d.loopDone = cancel, make(chan struct{})
	go func() {
		defer close(d.loopDone)
		Every(ctx, interval, func(time.Time) {
			res, err := d.Reconcile(ctx)
			switch {
			case err != nil:
				d.log.Debug("reconcile: engine not asked", "err", err)
			case len(res.Pools)+len(res.Networks)+len(res.Unbound)+len(res.Endpoints) > 0:
				d.log.Warn("reconcile: dropped state Docker no longer lists", "pools", res.Pools, "networks", res.Networks,
					"unbound", res.Unbound, "endpoints", res.Endpoints, "node", d.node)
			}
		})
	}()
}

// Every calls fn every interval, with the tick's time, until ctx ends.
func Every(ctx context.Context, interval time.Duration, fn func(time.Time)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			fn(now)
		}
	}
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
