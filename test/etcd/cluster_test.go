// Package etcd holds the end-to-end tests of cluster IPAM: simulated nodes
// (internal/etcdtest/simnode), each with its own data directory, bbolt
// store and node name, allocating through ipam.Allocator with blocks
// claimed in a real etcd server (internal/etcdtest) that the tests stop
// and restart.
package etcd

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/medianet/medianet/internal/etcdtest"
	"github.com/medianet/medianet/internal/etcdtest/simnode"
	"github.com/medianet/medianet/ipam"
	"github.com/medianet/medianet/ipam/etcdstore"
)

func etcdConfig(srv *etcdtest.Server) *etcdstore.Config {
	cfg := &etcdstore.Config{Endpoints: srv.Endpoints()}
	if srv.TLS != nil {
		cfg.CAFile, cfg.CertFile, cfg.KeyFile = srv.TLS.CAFile, srv.TLS.ClientCert, srv.TLS.ClientKey
	}
	if srv.User != "" {
		cfg.Username, cfg.Password = srv.User, srv.Password
	}
	return cfg
}

func makeNodes(t testing.TB, count int, ecfg *etcdstore.Config, subnet string, blockSize int) []*simnode.Node {
	var nodes []*simnode.Node
	for i := 0; i < count; i++ {
		cfg := ipam.Config{
			Network:   "media",
			Subnets:   []ipam.Subnet{{Prefix: netip.MustParsePrefix(subnet)}},
			BlockSize: blockSize,
			Node:      fmt.Sprintf("node-%d", i),
		}
		nodes = append(nodes, &simnode.Node{Name: cfg.Node, Dir: t.TempDir(), Cfg: cfg, Etcd: ecfg})
	}
	return nodes
}

// allocateAll runs per ADDs on every node, all concurrently, and returns
// the errors by node.
func allocateAll(ctx context.Context, nodes []*simnode.Node, tag string, per int) map[string][]error {
	var mu sync.Mutex
	errs := map[string][]error{}
	var wg sync.WaitGroup
	for _, n := range nodes {
		for i := 0; i < per; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := n.Allocate(ctx, fmt.Sprintf("%s-%s-%d", n.Name, tag, i)); err != nil {
					mu.Lock()
					errs[n.Name] = append(errs[n.Name], err)
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	return errs
}

func TestClusterScenario(t *testing.T) {
	tests := []struct {
		name string
		opts etcdtest.Options
	}{
		{"plain", etcdtest.Options{}},
		{"tls", etcdtest.Options{TLS: true}},
		{"tls+auth", etcdtest.Options{TLS: true, Auth: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := etcdtest.Start(t, tt.opts)
			runScenario(t, srv)
		})
	}
}

func runScenario(t *testing.T, srv *etcdtest.Server) {
	ctx := context.Background()
	ecfg := etcdConfig(srv)
	checker, err := etcdstore.New(*ecfg)
	if err != nil {
		t.Fatal(err)
	}
	defer checker.Close()
	// /28 blocks (16 addresses) so that 50 ADDs need several claims.
	nodes := makeNodes(t, 8, ecfg, "10.10.0.0/16", 28)

	// 1. 8 nodes x 50 concurrent ADDs.
	for node, errs := range allocateAll(ctx, nodes, "a", 50) {
		t.Errorf("node %s: %d ADDs failed, first: %v", node, len(errs), errs[0])
	}
	total, err := simnode.CheckCluster(ctx, nodes, checker)
	if err != nil {
		t.Fatalf("after concurrent ADDs: %v", err)
	}
	if total != 400 {
		t.Fatalf("allocations: got %d, want 400", total)
	}

	// 2. etcd stops in the middle of a run of ADDs.
	var done atomic.Int64
	stopped := make(chan struct{})
	go func() {
		for done.Load() < 80 {
			time.Sleep(time.Millisecond)
		}
		srv.Stop()
		close(stopped)
	}()
	var mid sync.WaitGroup
	for _, n := range nodes {
		mid.Add(1)
		go func() {
			defer mid.Done()
			for i := 0; i < 20; i++ {
				_, err := n.Allocate(ctx, fmt.Sprintf("%s-b-%d", n.Name, i))
				done.Add(1)
				if err != nil && !errors.Is(err, etcdstore.ErrUnavailable) {
					t.Errorf("node %s during the outage: %v, want success or ErrUnavailable", n.Name, err)
				}
			}
		}()
	}
	mid.Wait()
	<-stopped
	drainDuringOutage(t, ctx, nodes, srv.Endpoints()[0])

	// 3. etcd back: every node carries on.
	srv.Restart()
	for node, errs := range allocateAll(ctx, nodes, "c", 20) {
		t.Errorf("node %s after restart: %d ADDs failed, first: %v", node, len(errs), errs[0])
	}
	total, err = simnode.CheckCluster(ctx, nodes, checker)
	if err != nil {
		t.Fatalf("after restart: %v", err)
	}
	t.Logf("%d allocations on 8 nodes, no address twice, no block on two nodes", total)
}

// drainDuringOutage has every node allocate until its held blocks are full:
// each ADD succeeds while a held block has room, and the first failure is
// ErrUnavailable naming the endpoint, with no free address left.
func drainDuringOutage(t *testing.T, ctx context.Context, nodes []*simnode.Node, endpoint string) {
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			free, err := n.FreeInHeld(ctx)
			if err != nil {
				t.Errorf("node %s: %v", n.Name, err)
				return
			}
			for i := 0; i <= free; i++ {
				_, err := n.Allocate(ctx, fmt.Sprintf("%s-drain-%d", n.Name, i))
				switch {
				case i < free && err != nil:
					t.Errorf("node %s: ADD %d of %d free in held blocks failed: %v", n.Name, i+1, free, err)
					return
				case i == free && (!errors.Is(err, etcdstore.ErrUnavailable) || !strings.Contains(err.Error(), endpoint)):
					t.Errorf("node %s: ADD with held blocks full: got %v, want ErrUnavailable naming %s", n.Name, err, endpoint)
				}
			}
		}()
	}
	wg.Wait()
}
