package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/medianet/medianet/cni"
	"github.com/medianet/medianet/cni/etcdsource"
	"github.com/medianet/medianet/ipam/boltstore"
	"github.com/medianet/medianet/metrics/report"
)

// cniSyncer is the node agent's etcd sync for the CNI plugins' networks
// (etcdstore.Source.SyncIdle through etcdsource.Sync): usage published,
// idle blocks given back, lost blocks recorded, foreign and sticky
// reservations brought in line. The plugins never wait for etcd on DEL;
// this is where what a DEL emptied goes back, on a timer and soon after
// each DEL the plugins report.
type cniSyncer struct {
	dirs    []string
	dataDir string
	node    string
	log     *slog.Logger
	kick    chan struct{}
}

func newCNISyncer(dirs []string, dataDir, node string, log *slog.Logger) *cniSyncer {
	return &cniSyncer{dirs: dirs, dataDir: dataDir, node: node, log: log, kick: make(chan struct{}, 1)}
}

// onReport asks for a sync soon after a plugin emptied a block or left a
// sticky hold (the report says so); other DELs wait for the timer, so
// etcd's load does not follow pod churn. It is an Agent's OnReport: it
// never blocks.
func (s *cniSyncer) onReport(r report.Report) {
	if !r.Sync {
		return
	}
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// run syncs every interval and after kicks (at most once a second) until
// ctx ends.
func (s *cniSyncer) run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		s.syncAll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.kick:
			select { // let a burst of DELs land first
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
	}
}

// syncAll syncs every etcd network of the conf dirs whose store is this
// agent's.
func (s *cniSyncer) syncAll(ctx context.Context) {
	for _, conf := range s.etcdConfs() {
		st, err := boltstore.Open(ctx, conf.DataDir, boltstore.Options{})
		if err != nil {
			s.log.Warn("cni sync: open store", "network", conf.IPAM.Network, "err", err)
			continue
		}
		res, err := etcdsource.Sync(ctx, conf, st, time.Now())
		st.Close()
		switch {
		case err != nil:
			s.log.Warn("cni sync", "network", conf.IPAM.Network, "err", err)
		case len(res.Lost) > 0:
			s.log.Error("cni sync: blocks lost to another node; medianetctl ipam check lists who is in them",
				"network", conf.IPAM.Network, "blocks", res.Lost)
		case len(res.Released)+len(res.Reclaimed)+len(res.Foreign) > 0:
			s.log.Info("cni sync", "network", conf.IPAM.Network, "given back", res.Released, "taken back", res.Reclaimed, "foreign released", res.Foreign)
		}
	}
}

// etcdConfs reads the etcd networks of the conf dirs (libcni's file
// kinds, in name order; the first file naming a network wins).
func (s *cniSyncer) etcdConfs() []*cni.Config {
	var out []*cni.Config
	seen := map[string]bool{}
	for _, d := range s.dirs {
		for _, pat := range []string{"*.conf", "*.conflist", "*.json"} {
			files, _ := filepath.Glob(filepath.Join(d, pat))
			for _, f := range files {
				out = append(out, s.readEtcdConfs(f, seen)...)
			}
		}
	}
	return out
}

func (s *cniSyncer) readEtcdConfs(file string, seen map[string]bool) []*cni.Config {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil
	}
	raws, err := cni.IPAMConfs(data)
	if err != nil {
		return nil
	}
	var out []*cni.Config
	for _, raw := range raws {
		c, err := cni.ParseConfig(raw)
		if err != nil || !c.UsesEtcd() || seen[c.IPAM.Network] || filepath.Clean(c.DataDir) != filepath.Clean(s.dataDir) {
			continue
		}
		seen[c.IPAM.Network] = true
		if c.IPAM.Node == "" {
			c.IPAM.Node = s.node
		}
		out = append(out, c)
	}
	return out
}
