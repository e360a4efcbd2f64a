package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/medianet/medianet/cni"
	"github.com/medianet/medianet/cni/etcdsource"
	"github.com/medianet/medianet/cni/kubesource"
	"github.com/medianet/medianet/ipam"
	"github.com/medianet/medianet/ipam/boltstore"
	"github.com/medianet/medianet/metrics/report"
)

// Defaults of a Syncer's kicked syncs.
const (
	// DefaultKickDelay lets a burst of DELs land before the kicked sync.
	DefaultKickDelay = time.Second
	// DefaultKickInterval is the least time between two kicked syncs:
	// however many reports ask, etcd's load does not follow pod churn.
	DefaultKickInterval = 2 * time.Second
)

// Syncer is the node agent's sync for the CNI plugins' cluster networks
// (etcdstore.Source.SyncIdle through etcdsource.Sync, and
// kubestore.Source.SyncIdle through kubesource.Sync): usage published,
// idle blocks given back, lost blocks recorded, foreign and sticky
// reservations brought in line. The plugins never wait for etcd on DEL;
// this is where what a DEL emptied goes back, on a timer and soon after
// the DELs the plugins report (Kick).
type Syncer struct {
	Confs    ConfDirs
	Recorded Recorded
	Log      *slog.Logger
	// KickDelay and KickInterval: 0 means the defaults.
	KickDelay, KickInterval time.Duration

	kick chan struct{}
}

// NewSyncer returns a Syncer of the networks of confs (which names the
// data directory and node) and of those recorded in that data directory.
func NewSyncer(confs ConfDirs, log *slog.Logger) *Syncer {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Syncer{Confs: confs, Recorded: Recorded{DataDir: confs.DataDir, Node: confs.Node}, Log: log,
		KickDelay: DefaultKickDelay, KickInterval: DefaultKickInterval, kick: make(chan struct{}, 1)}
}

// OnReport asks for a sync soon after a plugin emptied a block or left a
// sticky hold on a network the agent knows (the report says so); other
// reports wait for the timer. It is a metrics.Agent's OnReport: it never
// blocks, and kicks coalesce.
func (s *Syncer) OnReport(r report.Report) {
	if !r.Sync || r.Network == "" {
		return
	}
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// kickWait is how long to wait, at now, before the sync a kick asks for,
// the last kicked sync having run at last: KickDelay, and no sooner than
// KickInterval after the last one.
func (s *Syncer) kickWait(now, last time.Time) time.Duration {
	return max(s.KickDelay, last.Add(s.KickInterval).Sub(now))
}

// Run syncs at once, then every interval and after kicks until ctx ends.
func (s *Syncer) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	var lastKicked time.Time
	for {
		s.SyncAll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.kick:
			w := time.NewTimer(s.kickWait(time.Now(), lastKicked))
			select {
			case <-ctx.Done():
				w.Stop()
				return
			case <-w.C:
			}
			lastKicked = time.Now()
		}
	}
}

// SyncAll syncs every cluster network (ipam.etcd or ipam.kubernetes) of
// the conf dirs whose store is this agent's, and every recorded one with
// state in the store: a network defined only in a Multus
// NetworkAttachmentDefinition is known from the plugin's record. The
// conf dirs are read once.
func (s *Syncer) SyncAll(ctx context.Context) {
	confs, _ := s.Confs.Configs() // the metrics source logs broken files
	for _, conf := range s.clusterConfs(ctx, confs) {
		if conf.UsesKubernetes() {
			s.syncOne(ctx, conf, func(st ipam.Store) (syncOutcome, error) {
				res, err := kubesource.Sync(ctx, conf, st, time.Now())
				return syncOutcome{lost: res.Lost, changed: len(res.Released)+len(res.Reclaimed)+len(res.Adopted) > 0,
					attrs: []any{"given back", res.Released, "taken back", res.Reclaimed, "adopted", res.Adopted}}, err
			})
			continue
		}
		s.syncOne(ctx, conf, func(st ipam.Store) (syncOutcome, error) {
			res, err := etcdsource.Sync(ctx, conf, st, time.Now())
			return syncOutcome{lost: res.Lost, changed: len(res.Released)+len(res.Reclaimed)+len(res.Foreign) > 0,
				attrs: []any{"given back", res.Released, "taken back", res.Reclaimed, "foreign released", res.Foreign}}, err
		})
	}
}

// syncOutcome is what one network's sync did, for the log: blocks lost
// to another node, and whether anything changed (attrs name what).
type syncOutcome struct {
	lost    []netip.Prefix
	changed bool
	attrs   []any
}

// syncOne opens conf's store, runs sync over it and logs the outcome: a
// failure, blocks lost to another node, or what changed.
func (s *Syncer) syncOne(ctx context.Context, conf *cni.Config, sync func(ipam.Store) (syncOutcome, error)) {
	st, err := boltstore.Open(ctx, conf.DataDir, boltstore.Options{})
	if err != nil {
		s.Log.Warn("cni sync: open store", "network", conf.IPAM.Network, "err", err)
		return
	}
	defer st.Close()
	out, err := sync(st)
	switch {
	case err != nil:
		s.Log.Warn("cni sync", "network", conf.IPAM.Network, "err", err)
	case len(out.lost) > 0:
		s.Log.Error("cni sync: blocks lost to another node; medianetctl ipam check lists who is in them",
			"network", conf.IPAM.Network, "blocks", out.lost)
	case out.changed:
		s.Log.Info("cni sync", append([]any{"network", conf.IPAM.Network}, out.attrs...)...)
	}
}

// clusterConfs returns the cluster networks to sync: the conf dirs'
// (the first file naming a network wins), then the recorded ones that no
// conf file names and that have state in the store.
func (s *Syncer) clusterConfs(ctx context.Context, confs []*cni.Config) []*cni.Config {
	var out []*cni.Config
	seen := map[string]bool{}
	for _, c := range confs {
		if (c.UsesEtcd() || c.UsesKubernetes()) && !seen[c.IPAM.Network] {
			seen[c.IPAM.Network] = true
			out = append(out, c)
		}
	}
	recorded, err := s.Recorded.Configs()
	if err != nil {
		s.Log.Warn("cni sync: recorded networks skipped", "err", err)
	}
	if len(recorded) == 0 {
		return out
	}
	inStore, err := storeNetworks(ctx, s.Recorded.DataDir)
	if err != nil {
		s.Log.Warn("cni sync: list the store's networks", "err", err)
		return out
	}
	for _, c := range recorded {
		if !seen[c.IPAM.Network] && inStore[c.IPAM.Network] {
			seen[c.IPAM.Network] = true
			out = append(out, c)
		}
	}
	return out
}

// storeNetworks lists the networks with state in dataDir's store (none
// when there is no store yet: it is not created).
func storeNetworks(ctx context.Context, dataDir string) (map[string]bool, error) {
	if _, err := os.Stat(filepath.Join(dataDir, boltstore.FileName)); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	st, err := boltstore.Open(ctx, dataDir, boltstore.Options{})
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", dataDir, err)
	}
	defer st.Close()
	out := map[string]bool{}
	err = st.View(ctx, func(tx ipam.Tx) error {
		nets, err := tx.Networks()
		for _, n := range nets {
			out[n] = true
		}
		return err
	})
	return out, err
}
