package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/medianet/medianet/ipam"
	"github.com/medianet/medianet/ipam/etcdstore"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// etcdBackend is a world's etcd: the real etcd source (etcdstore) under
// a key prefix of the world's own.
type etcdBackend struct {
	raw    *clientv3.Client // unhooked, for the invariants
	cli    *etcdstore.Client
	prefix string
}

func newEtcdBackend(endpoints []string, raw *clientv3.Client, w *World) (*etcdBackend, error) {
	b := &etcdBackend{raw: raw, prefix: fmt.Sprintf("/sim/%d-%d", os.Getpid(), worldSeq.Add(1))}
	var err error
	b.cli, err = etcdstore.New(etcdstore.Config{
		Endpoints: endpoints, Prefix: b.prefix, RequestTimeout: time.Hour, IdleRelease: IdleRelease,
		Now: func() time.Time { return w.now }, Hook: w.hook,
	})
	return b, err
}

func (b *etcdBackend) name() string { return "etcd" }

func (b *etcdBackend) caps() caps {
	return caps{Sticky: true, BlockSizeChange: true, Foreign: true}
}

func (b *etcdBackend) source(cfg *ipam.Config, st ipam.Store) (ipam.BlockSource, syncFunc, error) {
	src, err := etcdstore.NewSource(b.cli, cfg, st)
	if err != nil {
		return nil, nil, err
	}
	return src, syncOf(src.SyncIdle), nil
}

// reclaim is `medianetctl ipam reclaim --node NAME [--force]`.
func (b *etcdBackend) reclaim(ctx context.Context, node string, s Step) (bool, error) {
	_, err := b.cli.Reclaim(ctx, node, etcdstore.ReclaimOptions{Network: Network, Force: s.Force})
	return err == nil, err
}

func (b *etcdBackend) lose(string) error { return nil }

func (b *etcdBackend) netPrefix() string { return b.prefix + "/networks/" + Network + "/" }

// stamp is etcd's revision.
func (b *etcdBackend) stamp() string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := b.raw.Get(ctx, b.prefix+"/revision-probe")
	if err != nil {
		return ""
	}
	return fmt.Sprint(resp.Header.Revision)
}

// read decodes the network's keys: block claims and sticky records.
func (b *etcdBackend) read() (*clusterState, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pfx := b.netPrefix()
	resp, err := b.raw.Get(ctx, pfx, clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	cs := newClusterState()
	for _, kv := range resp.Kvs {
		k := strings.TrimPrefix(string(kv.Key), pfx)
		if k == "config" {
			continue
		}
		cs.residue = append(cs.residue, k+" = "+string(kv.Value))
		switch kind, rest, _ := strings.Cut(k, "/"); kind {
		case "blocks":
			i := strings.LastIndexByte(rest, '-')
			p, err := netip.ParsePrefix(rest[:max(i, 0)] + "/" + rest[i+1:])
			var cl etcdstore.Claim
			if err == nil && json.Unmarshal(kv.Value, &cl) == nil {
				cs.claims[p] = cl.Node
			}
		case "sticky":
			var r stickyRec
			if json.Unmarshal(kv.Value, &r) == nil {
				cs.addSticky(rest, r)
			}
		}
	}
	return cs, nil
}

// close removes the world's keys.
func (b *etcdBackend) close() {
	b.cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _ = b.raw.Delete(ctx, b.prefix+"/", clientv3.WithPrefix())
}
