package etcdstore_test

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/medianet/medianet/internal/etcdtest"
	"github.com/medianet/medianet/ipam"
	"github.com/medianet/medianet/ipam/boltstore"
	"github.com/medianet/medianet/ipam/etcdstore"
)

// memStore is an in-memory ipam.Store holding blocks only. Methods
// SyncIdle does not use are left to the embedded nil interface.
type memStore struct {
	mu     sync.Mutex
	blocks map[netip.Prefix]ipam.Block
}

type memTx struct {
	ipam.Tx
	s *memStore
}

func (s *memStore) Update(_ context.Context, fn func(ipam.Tx) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fn(memTx{s: s})
}
func (s *memStore) View(ctx context.Context, fn func(ipam.Tx) error) error { return s.Update(ctx, fn) }
func (s *memStore) Close() error                                           { return nil }

func (t memTx) ForEachBlock(_ string, fn func(ipam.Block) error) error {
	for _, b := range t.s.blocks {
		if err := fn(b); err != nil {
			return err
		}
	}
	return nil
}

func (t memTx) BlockContaining(_ string, a netip.Addr) (ipam.Block, bool, error) {
	for p, b := range t.s.blocks {
		if p.Contains(a) {
			return b, true, nil
		}
	}
	return ipam.Block{}, false, nil
}

func (t memTx) PutBlock(_ string, b ipam.Block) error { t.s.blocks[b.Prefix] = b; return nil }

// ForEachAllocation: memStore holds no allocation.
func (t memTx) ForEachAllocation(string, func(ipam.Allocation) error) error { return nil }

func (t memTx) DeleteBlock(_ string, p netip.Prefix) error { delete(t.s.blocks, p); return nil }

func TestSyncIdle(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	ctx := context.Background()
	idle := time.Minute
	c := clientFor(t, srv, func(cfg *etcdstore.Config) { cfg.IdleRelease = idle })
	cfg := ipam.Config{Network: "media", Subnets: []ipam.Subnet{{Prefix: netip.MustParsePrefix("10.6.0.0/24")}}, BlockSize: 28, Node: "a"}
	src, err := etcdstore.NewSource(c, &cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	sub := cfg.Subnets[0].Prefix
	p, err := src.Next(ctx, sub, 28, ipam.Held{})
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := ipam.NewBlock(p, nil)
	blk.SetUsed(3, true)
	st := &memStore{blocks: map[netip.Prefix]ipam.Block{p: blk}}
	now := time.Now()

	steps := []struct {
		name         string
		used         bool
		at           time.Duration
		wantMarked   int
		wantReleased int
		wantEmpty    bool // claim's mark afterwards
	}{
		{"in use: usage published", true, 0, 1, 0, false},
		{"in use, unchanged: nothing to do", true, 0, 0, 0, false},
		{"emptied: marked", false, 0, 1, 0, true},
		{"empty, not idle long enough", false, idle / 2, 0, 0, true},
		{"used again: unmarked", true, idle * 2, 1, 0, false},
		{"emptied again: marked", false, idle * 2, 1, 0, true},
		{"idle: given back", false, idle*3 + time.Second, 0, 1, false},
	}
	for _, s := range steps {
		blk.SetUsed(3, s.used)
		res, err := src.SyncIdle(ctx, st, now.Add(s.at))
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if len(res.Marked) != s.wantMarked || len(res.Released) != s.wantReleased {
			t.Fatalf("%s: got %+v, want %d marked, %d released", s.name, res, s.wantMarked, s.wantReleased)
		}
		claims, err := c.Claims(ctx, "media", "a")
		if err != nil {
			t.Fatal(err)
		}
		if s.wantReleased > 0 {
			if len(claims) != 0 || len(st.blocks) != 0 {
				t.Fatalf("%s: claims %v, local blocks %v; want none", s.name, claims, st.blocks)
			}
			continue
		}
		if len(claims) != 1 || claims[0].Claim.Empty != s.wantEmpty {
			t.Fatalf("%s: claims %+v, want one with empty=%v", s.name, claims, s.wantEmpty)
		}
	}
	// A writes check: a sync with nothing changed writes nothing.
	q, err := src.Next(ctx, sub, 28, ipam.Held{})
	if err != nil {
		t.Fatal(err)
	}
	qb, _ := ipam.NewBlock(q, nil)
	qb.SetUsed(0, true)
	st.blocks[q] = qb
	if _, err := src.SyncIdle(ctx, st, now); err != nil { // publishes q's usage
		t.Fatal(err)
	}
	w := c.Writes()
	if _, err := src.SyncIdle(ctx, st, now); err != nil {
		t.Fatal(err)
	}
	if got := c.Writes() - w; got != 0 {
		t.Errorf("writes of a sync with nothing changed: got %d, want 0", got)
	}
}

// TestAdoptBeatsStaleRelease: a claim re-adopted by another process of
// the node is not deleted by a give-back that read it before.
func TestAdoptBeatsStaleRelease(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	ctx := context.Background()
	c := clientFor(t, srv, nil)
	n := network("10.7.0.0/24", 28)
	p, err := c.ClaimNext(ctx, n, "a", n.Subnets[0].Prefix, ipam.Held{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.MarkUsage(ctx, n.Name, "a", p, nil); err != nil {
		t.Fatal(err)
	}
	stale, err := c.Claims(ctx, n.Name, "a")
	if err != nil || len(stale) != 1 {
		t.Fatalf("claims: %v, %v", stale, err)
	}
	// Another process of node a, not holding p locally, adopts it.
	got, err := c.ClaimNext(ctx, n, "a", n.Subnets[0].Prefix, ipam.Held{})
	if err != nil || got != p {
		t.Fatalf("adopt: got %s, %v; want %s", got, err, p)
	}
	if ok, err := c.ReleaseClaim(ctx, stale[0]); err != nil || ok {
		t.Fatalf("stale release: deleted=%v, %v; want the claim kept", ok, err)
	}
	now, _ := c.Claims(ctx, n.Name, "a")
	if len(now) != 1 || now[0].Claim.Empty {
		t.Errorf("claim after adoption: %+v, want one, not empty", now)
	}
}

// TestSyncIdleBoltStore runs SyncIdle over the real embedded store.
func TestSyncIdleBoltStore(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	ctx := context.Background()
	c := clientFor(t, srv, func(cfg *etcdstore.Config) { cfg.IdleRelease = time.Minute })
	cfg := ipam.Config{Network: "media", Subnets: []ipam.Subnet{{Prefix: netip.MustParsePrefix("10.8.0.0/24")}}, BlockSize: 28, Node: "a"}
	st, err := boltstore.Open(ctx, t.TempDir(), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	src, err := etcdstore.NewSource(c, &cfg, st)
	if err != nil {
		t.Fatal(err)
	}
	a, err := ipam.NewAllocator(cfg, st, src)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Allocate(ctx, ipam.Request{ContainerID: "c1", IfName: "eth0"}); err != nil {
		t.Fatal(err)
	}
	if res, err := src.SyncIdle(ctx, st, time.Now()); err != nil || len(res.Marked) != 1 {
		t.Fatalf("first sync with a live allocation: %+v, %v; want its usage published", res, err)
	}
	if res, err := src.SyncIdle(ctx, st, time.Now()); err != nil || len(res.Marked) != 0 {
		t.Fatalf("sync with nothing changed: %+v, %v; want nothing marked", res, err)
	}
	if _, _, err := a.Release(ctx, "c1", "eth0"); err != nil {
		t.Fatal(err)
	}
	if res, err := src.SyncIdle(ctx, st, time.Now()); err != nil || len(res.Marked) != 1 {
		t.Fatalf("sync after the last release: %+v, %v; want one block marked empty", res, err)
	}
	res, err := src.SyncIdle(ctx, st, time.Now().Add(2*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	claims, _ := c.Claims(ctx, "media", "a")
	if len(res.Released) != 1 || len(claims) != 0 {
		t.Errorf("idle block not given back: %+v, claims %v", res, claims)
	}
	blocks, _ := heldCount(ctx, st)
	if blocks != 0 {
		t.Errorf("blocks left in the store: got %d, want 0", blocks)
	}
	// The next ADD claims again.
	if _, err := a.Allocate(ctx, ipam.Request{ContainerID: "c2", IfName: "eth0"}); err != nil {
		t.Fatal(err)
	}
	claims, _ = c.Claims(ctx, "media", "a")
	if len(claims) != 1 {
		t.Fatalf("claims after a new ADD: %v, want 1", claims)
	}
	if _, err := c.Reclaim(ctx, "a", etcdstore.ReclaimOptions{}); err == nil {
		t.Errorf("reclaim of a node with a live allocation succeeded")
	}
}

func heldCount(ctx context.Context, st ipam.Store) (int, error) {
	n := 0
	err := st.View(ctx, func(tx ipam.Tx) error {
		return tx.ForEachBlock("media", func(ipam.Block) error { n++; return nil })
	})
	return n, err
}

// TestSyncIdleAfterForcedReclaim: a node that comes back after its blocks
// were reclaimed by force takes them back when nobody else did, and
// reports them lost when another node has one.
func TestSyncIdleAfterForcedReclaim(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	ctx := context.Background()
	c := clientFor(t, srv, nil)
	cfg := ipam.Config{Network: "media", Subnets: []ipam.Subnet{{Prefix: netip.MustParsePrefix("10.9.0.0/24")}}, BlockSize: 28, Node: "a"}
	src, err := etcdstore.NewSource(c, &cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := src.Next(ctx, cfg.Subnets[0].Prefix, 28, ipam.Held{})
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := ipam.NewBlock(p, nil)
	blk.SetUsed(1, true)
	st := &memStore{blocks: map[netip.Prefix]ipam.Block{p: blk}}
	reclaim := func() {
		if _, err := c.Reclaim(ctx, "a", etcdstore.ReclaimOptions{Force: true}); err != nil {
			t.Fatal(err)
		}
	}
	reclaim()
	res, err := src.SyncIdle(ctx, st, time.Now())
	if err != nil || len(res.Reclaimed) != 1 || len(res.Lost) != 0 {
		t.Fatalf("sync after reclaim: %+v, %v; want %s reclaimed", res, err, p)
	}
	reclaim()
	n := etcdstore.NetworkFromConfig(&cfg)
	if err := c.ClaimBlock(ctx, n, "b", p); err != nil {
		t.Fatal(err)
	}
	res, err = src.SyncIdle(ctx, st, time.Now())
	if err != nil || len(res.Lost) != 1 || res.Lost[0] != p {
		t.Fatalf("sync after another node took the block: %+v, %v; want %s lost", res, err, p)
	}
}
