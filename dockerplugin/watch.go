package dockerplugin

import (
	"context"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Watching the engine. Docker calls the plugin from inside its own work:
// a Swarm leader's allocator calls RequestPool and AllocateNetwork while
// it allocates, dockerd calls RequestPool while it creates a network. The
// engine cannot be relied on to answer then (a leader's Swarm control does
// not answer its own allocator's callbacks), so the driver never asks it
// from inside a call. It asks from two goroutines of its own, and calls
// judge by what they recorded:
//
//   - the reconcile loop (reconcile.go) lists the engine's networks every
//     ReconcileInterval, and at once when a call met a pool it could not
//     judge (poke); the last view is kept with the time it was asked for;
//   - in global scope, the leader loop asks every leaderPoll whether this
//     node leads the Swarm, and keeps the last time (asked for) it did not
//     (seen twice in a row): notLeader, persisted. A follower drops the
//     global pools requested before it (checkLeader).
//
// The Swarm side needs no view of the cluster's networks: swarmkit's
// allocator, starting on a new leader, allocates every network of the
// cluster again (RequestPool, gateway, aux addresses, AllocateNetwork)
// before it allocates any new one. So on the leader, a global pool last
// requested before notLeader was not requested by this term's allocator:
// its network no longer exists, or is being allocated again right now;
// either way every address it holds is obsolete, and the allocator asks
// again for every address that is live. Such a pool is dropped by the
// leader loop, or, should it be left, when a new pool overlaps it or asks
// for its subnet (ipamdriver.go); and a Swarm network last allocated
// before notLeader is no owner a new network must yield to (bind.go).

// leaderPoll is how often the leader loop asks whether this node leads.
const leaderPoll = 2 * time.Second

// metaNotLeader is the key of notLeader in bucketMeta (RFC 3339, nano).
var metaNotLeader = []byte("notLeader")

// recordView keeps v as the last view of the engine, unless a later one
// is kept already. The caller holds d.mu.
func (d *Driver) recordView(v engineView) {
	if d.lastView == nil || !v.asked.Before(d.lastView.asked) {
		d.lastView = &v
	}
}

// pokeReconcile asks the reconcile loop for a fresh view now, without
// waiting for it.
func (d *Driver) pokeReconcile() {
	select {
	case d.poke <- struct{}{}:
	default:
	}
}

// checkLeader asks the engine whether this node leads the Swarm (without
// the lock). Seen not leading twice in a row, the node is a follower since
// the first of the two questions: that time becomes notLeader (persisted
// when it changes), and the global pools requested before it are dropped
// with their addresses. No allocator of this node uses them any more, and
// when it leads again its allocator allocates every live network and
// address again. Twice, because a manager's question may be answered by
// another manager that does not know yet it lost the leadership.
func (d *Driver) checkLeader(ctx context.Context) error {
	asked := d.now()
	leader, err := d.eng.Leader(ctx)
	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil || leader {
		d.following = time.Time{}
		return err
	}
	if d.following.IsZero() {
		d.following = asked
		return nil
	}
	if d.following.After(d.notLeader) {
		d.notLeader = d.following
		raw, _ := d.notLeader.MarshalText()
		if err := d.st.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(metaNotLeader, raw) }); err != nil {
			return err
		}
	}
	return d.dropObsolete(ctx)
}

// dropObsolete drops the global pools requested before notLeader. The
// caller holds d.mu.
func (d *Driver) dropObsolete(ctx context.Context) error {
	ps, err := d.pools(func(p pool) bool { return p.Space == GlobalAddressSpace && d.obsolete(p.Requested) })
	if err != nil {
		return err
	}
	for _, p := range ps {
		if err := d.freePool(ctx, p); err != nil {
			return err
		}
		d.log.Info("dropped a former leader's copy of a Swarm pool: a new leader allocates it again", "pool", p.ID, "subnet", p.Prefix, "networks", p.Networks, "node", d.node)
	}
	return nil
}

// loadNotLeader reads the persisted notLeader.
func (d *Driver) loadNotLeader() error {
	return d.st.db.View(func(tx *bolt.Tx) error {
		if raw := tx.Bucket(bucketMeta).Get(metaNotLeader); raw != nil {
			return d.notLeader.UnmarshalText(raw)
		}
		return nil
	})
}

// obsolete reports whether global pool p was last requested before this
// node was last seen not leading: not by the current leader's allocator.
// The caller holds d.mu.
func (d *Driver) obsolete(t time.Time) bool {
	return !d.notLeader.IsZero() && t.Before(d.notLeader)
}

// startLoops runs Reconcile every interval (and when poked), and in
// global scope checkLeader every leaderPoll, until Close.
func (d *Driver) startLoops(interval time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	d.stopLoop, d.loopDone = cancel, make(chan struct{})
	done := make(chan struct{}, 2)
	go func() {
		defer func() { done <- struct{}{} }()
		if interval < 0 {
			return
		}
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			d.reconcileOnce(ctx)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			case <-d.poke:
			}
		}
	}()
	go func() {
		defer func() { done <- struct{}{} }()
		if d.scope != ScopeGlobal {
			return
		}
		for {
			if err := d.checkLeader(ctx); err != nil {
				d.log.Debug("leader check: engine not asked", "err", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(leaderPoll):
			}
		}
	}()
	go func() {
		<-done
		<-done
		close(d.loopDone)
	}()
}

func (d *Driver) reconcileOnce(ctx context.Context) {
	res, err := d.Reconcile(ctx)
	switch {
	case err != nil:
		d.log.Debug("reconcile: engine not asked", "err", err)
	case len(res.Pools)+len(res.Networks)+len(res.Unbound)+len(res.Endpoints)+len(res.Links) > 0:
		d.log.Warn("reconcile: dropped state Docker no longer lists", "pools", res.Pools, "networks", res.Networks,
			"unbound", res.Unbound, "endpoints", res.Endpoints, "links", res.Links, "node", d.node)
	default:
		d.log.Debug("reconcile: engine asked, nothing to drop", "node", d.node)
	}
	if len(res.Named) > 0 {
		d.log.Info("reconcile: DHCP leases named after their containers (option 12 at the next renewal, now)", "leases", res.Named, "node", d.node)
	}
	if len(res.Alive) > 0 {
		d.log.Warn("reconcile: Docker does not list endpoints whose links are in containers: kept", "endpoints", res.Alive, "node", d.node)
	}
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
