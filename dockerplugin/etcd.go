package dockerplugin

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/medianet/medianet/ipam"
	"github.com/medianet/medianet/ipam/etcdstore"
)

// etcdNetName is the ipam network of a subnet whose blocks are claimed in
// etcd: the same on every host, so that their claims share one network
// record in etcd ("docker-10.0.0.0-24"; etcd network names have no '/').
func etcdNetName(subnet netip.Prefix) string {
	return "docker-" + subnet.Addr().String() + "-" + strconv.Itoa(subnet.Bits())
}

// EtcdSync is what one SyncEtcd did for one ipam network.
type EtcdSync struct {
	Network string
	etcdstore.SyncResult
	// Err is the network's error; etcdstore.ErrUnavailable is not one.
	Err error
}

// SyncEtcd brings this host's block claims in etcd in line with its IPAM
// store, for every pool claiming blocks in etcd (and released pools whose
// blocks are not given back yet): empty blocks are marked, and given back
// once empty for the idle time (etcdstore.Source.SyncIdle). etcd being
// unreachable is no error: the next call catches up. A Lost block (now
// claimed by another host, after a forced reclaim) is logged as an error,
// since its addresses may be in use twice. medianetd calls it on a timer.
//
// The driver's lock is held only to read the pools and, at the end, to
// forget a released pool after checking that no RequestPool brought it
// back: etcd is never asked under it, so Docker's calls do not wait for a
// slow or unreachable etcd.
func (d *Driver) SyncEtcd(ctx context.Context, now time.Time) []EtcdSync {
	if d.etcd == nil {
		return nil
	}
	var pools []pool
	d.mu.Lock()
	err := d.st.db.View(func(tx *bolt.Tx) error {
		return each(tx, bucketEtcdNets, func(p pool) error { pools = append(pools, p); return nil })
	})
	d.mu.Unlock()
	if err != nil {
		d.log.Error("etcd sync: read state", "node", d.node, "err", err)
		return []EtcdSync{{Err: err}}
	}
	var out []EtcdSync
	for _, p := range pools {
		s := d.syncPool(ctx, p, now)
		switch {
		case s.Err != nil:
			d.log.Error("etcd sync failed", "network", s.Network, "node", d.node, "err", s.Err)
		case len(s.Lost) > 0:
			d.log.Error("BLOCKS LOST: held by this host but now claimed by another host in etcd, so their addresses may be in use twice; remove the containers using them and find out who reclaimed them (medianetctl ipam reclaim --force)",
				"network", s.Network, "blocks", s.Lost, "node", d.node)
		case len(s.Marked)+len(s.Released)+len(s.Reclaimed) > 0:
			d.log.Info("etcd sync", "network", s.Network, "node", d.node, "marked", s.Marked, "released", s.Released, "reclaimed", s.Reclaimed)
		}
		out = append(out, s)
	}
	return out
}

// syncPool runs SyncIdle for one etcd pool, without the driver's lock,
// and forgets a released pool once the store holds no block of it.
func (d *Driver) syncPool(ctx context.Context, p pool, now time.Time) EtcdSync {
	s := EtcdSync{Network: p.Net}
	book, ok := d.addrs.(*ipamBook)
	if !ok {
		s.Err = fmt.Errorf("network %q: etcd sync needs the IPAM store", p.Net)
		return s
	}
	held := 0
	s.Err = book.with(ctx, func(st ipam.Store) error {
		cfg := ipamConfig(p, d.node)
		src, err := etcdstore.NewSource(d.etcd, &cfg, st)
		if err != nil {
			return err
		}
		s.SyncResult, err = src.SyncIdle(ctx, st, now)
		if err != nil {
			return err
		}
		return st.View(ctx, func(tx ipam.Tx) error {
			return tx.ForEachBlock(p.Net, func(ipam.Block) error { held++; return nil })
		})
	})
	if errors.Is(s.Err, etcdstore.ErrUnavailable) {
		d.log.Debug("etcd sync: etcd unavailable", "network", p.Net, "node", d.node, "err", s.Err)
		s.Err = nil
		return s
	}
	if s.Err == nil && held == 0 {
		s.Err = d.forgetEtcdNet(p.Net)
	}
	if s.Err != nil {
		s.Err = fmt.Errorf("network %q on node %s: %w", p.Net, d.node, s.Err)
	}
	return s
}

// forgetEtcdNet forgets the released etcd network net unless a pool uses
// it again (a RequestPool since the sync began).
func (d *Driver) forgetEtcdNet(net string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.st.db.Update(func(tx *bolt.Tx) error {
		inUse := false
		err := each(tx, bucketPools, func(p pool) error { inUse = inUse || (p.Etcd && p.Net == net); return nil })
		if err != nil || inUse {
			return err
		}
		return del(tx, bucketEtcdNets, net)
	})
}
