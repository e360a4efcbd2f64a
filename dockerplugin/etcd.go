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
func (d *Driver) SyncEtcd(ctx context.Context, now time.Time) []EtcdSync {
	if d.etcd == nil {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	var pools []pool
	inUse := map[string]bool{}
	err := d.st.db.View(func(tx *bolt.Tx) error {
		if err := each(tx, bucketPools, func(p pool) error { inUse[p.Net] = inUse[p.Net] || p.Etcd; return nil }); err != nil {
			return err
		}
		return each(tx, bucketEtcdNets, func(p pool) error { pools = append(pools, p); return nil })
	})
	if err != nil {
		d.log.Error("etcd sync: read state", "err", err)
		return []EtcdSync{{Err: err}}
	}
	var out []EtcdSync
	for _, p := range pools {
		s := d.syncPool(ctx, p, inUse[p.Net], now)
		switch {
		case s.Err != nil:
			d.log.Error("etcd sync failed", "network", s.Network, "err", s.Err)
		case len(s.Lost) > 0:
			d.log.Error("BLOCKS LOST: held by this host but now claimed by another host in etcd, so their addresses may be in use twice; remove the containers using them and find out who reclaimed them (medianetctl ipam reclaim --force)",
				"network", s.Network, "blocks", s.Lost, "node", d.node)
		case len(s.Marked)+len(s.Released)+len(s.Reclaimed) > 0:
			d.log.Info("etcd sync", "network", s.Network, "marked", s.Marked, "released", s.Released, "reclaimed", s.Reclaimed)
		}
		out = append(out, s)
	}
	return out
}

// syncPool runs SyncIdle for one etcd pool and forgets a released pool
// once the store holds no block of it.
func (d *Driver) syncPool(ctx context.Context, p pool, inUse bool, now time.Time) EtcdSync {
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
		d.log.Debug("etcd sync: etcd unavailable", "network", p.Net, "err", s.Err)
		s.Err = nil
		return s
	}
	if s.Err == nil && !inUse && held == 0 {
		s.Err = d.st.db.Update(func(tx *bolt.Tx) error { return del(tx, bucketEtcdNets, p.Net) })
	}
	if s.Err != nil {
		s.Err = fmt.Errorf("network %q: %w", p.Net, s.Err)
	}
	return s
}
