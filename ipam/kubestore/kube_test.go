package kubestore_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/medianet/medianet/internal/kubetest"
	"github.com/medianet/medianet/ipam"
	"github.com/medianet/medianet/ipam/boltstore"
	"github.com/medianet/medianet/ipam/kubestore"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
)

// TestAgainstAPIServer runs the source against one real kube-apiserver
// (internal/kubetest), each part on a network of its own; the part that
// stops the server runs last.
func TestAgainstAPIServer(t *testing.T) {
	srv := kubetest.Start(t)
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, *kubetest.Server)
	}{
		{"ConcurrentNodesNoOverlap", testConcurrentNodes},
		{"ConflictStorm100Nodes", testConflictStorm},
		{"SecondCreateIs409", testSecondCreate},
		{"ConfigMismatchRefused", testConfigMismatch},
		{"SyncGivesBackAndAdopts", testSync},
		{"NodeDeletedBlocksReclaimed", testNodeDeleted},
		{"LostBlockDetected", testLostBlock},
		{"AgentRBACIsLeast", testAgentRBAC},
		{"ServerHungThenKilled", testServerDown},
	} {
		if !t.Run(tc.name, func(t *testing.T) { tc.fn(t, srv) }) && tc.name == "ServerHungThenKilled" {
			return
		}
	}
}

// agentClient returns a client with the agent's least-privilege
// credentials.
func agentClient(t *testing.T, srv *kubetest.Server, mod func(*kubestore.Config)) *kubestore.Client {
	t.Helper()
	cfg := kubestore.Config{Kubeconfig: srv.AgentKubeconfig}
	if mod != nil {
		mod(&cfg)
	}
	c, err := kubestore.New(cfg)
	if err != nil {
		t.Fatalf("new client: %v", err)
	}
	return c
}

func adminDynamic(t *testing.T, srv *kubetest.Server) dynamic.Interface {
	t.Helper()
	rc, err := kubetest.RESTConfig(srv.AdminKubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	d, err := dynamic.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func netConfig(name, subnet string, blockSize int, node string) ipam.Config {
	return ipam.Config{Network: name, Subnets: []ipam.Subnet{{Prefix: netip.MustParsePrefix(subnet)}}, BlockSize: blockSize, Node: node}
}

// simNode is a simulated node claiming through its own Source; its claims
// are serialised, as the allocator's are.
type simNode struct {
	name string
	src  *kubestore.Source
	mu   sync.Mutex
	held []netip.Prefix
}

func newSimNode(t *testing.T, c *kubestore.Client, cfg ipam.Config) *simNode {
	t.Helper()
	src, err := kubestore.NewSource(c, &cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &simNode{name: cfg.Node, src: src}
}

func (n *simNode) claim(ctx context.Context) (netip.Prefix, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	sub := n.src.Network().Subnets[0]
	b, err := n.src.Next(ctx, sub.Prefix, sub.BlockBits, ipam.NewHeld(n.held...))
	if err == nil {
		for _, h := range n.held {
			if h == b {
				return b, fmt.Errorf("node %s got block %s it already holds", n.name, b)
			}
		}
		n.held = append(n.held, b)
	}
	return b, err
}

// checkNoOverlap verifies that every block a node holds is its own in the
// API and no block is held twice; it returns the number of blocks.
func checkNoOverlap(t *testing.T, c *kubestore.Client, network string, nodes []*simNode) int {
	t.Helper()
	claims, err := c.Blocks(context.Background(), network, "")
	if err != nil {
		t.Fatal(err)
	}
	owner := map[netip.Prefix]string{}
	for _, b := range claims {
		owner[b.CIDR] = b.Node
	}
	seen := map[netip.Prefix]string{}
	total := 0
	for _, n := range nodes {
		for _, b := range n.held {
			total++
			if other, dup := seen[b]; dup {
				t.Errorf("block %s held by %s and %s", b, other, n.name)
			}
			seen[b] = n.name
			if owner[b] != n.name {
				t.Errorf("block %s: node %s holds it, the API says %q", b, n.name, owner[b])
			}
			for o, on := range seen {
				if o != b && o.Overlaps(b) {
					t.Errorf("blocks %s (%s) and %s (%s) overlap", o, on, b, n.name)
				}
			}
		}
	}
	if len(claims) != total {
		t.Errorf("the API has %d claims, the nodes hold %d", len(claims), total)
	}
	return total
}

func testConcurrentNodes(t *testing.T, srv *kubetest.Server) {
	c := agentClient(t, srv, func(cfg *kubestore.Config) { cfg.RequestTimeout = 30 * time.Second })
	var nodes []*simNode
	for i := range 5 {
		nodes = append(nodes, newSimNode(t, c, netConfig("conc", "10.20.0.0/22", 28, fmt.Sprintf("node-%d", i))))
	}
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for _, n := range nodes {
		for range 3 {
			wg.Go(func() {
				for range 3 {
					if _, err := n.claim(context.Background()); err != nil {
						errs <- fmt.Errorf("node %s: %w", n.name, err)
					}
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := checkNoOverlap(t, c, "conc", nodes); got != 5*9 {
		t.Errorf("claimed %d blocks, want %d", got, 5*9)
	}
}

// testConflictStorm: 100 nodes claim at once in a subnet of 128 blocks,
// so their first picks collide; every one must end with a block of its
// own, within the bounded retries.
func testConflictStorm(t *testing.T, srv *kubetest.Server) {
	const nodes = 100
	var ns []*simNode
	var clients []*kubestore.Client
	for i := range nodes {
		c := agentClient(t, srv, func(cfg *kubestore.Config) { cfg.RequestTimeout = 60 * time.Second })
		clients = append(clients, c)
		ns = append(ns, newSimNode(t, c, netConfig("storm", "10.30.0.0/21", 28, fmt.Sprintf("storm-%03d", i))))
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, nodes)
	for _, n := range ns {
		wg.Go(func() {
			<-start
			if _, err := n.claim(context.Background()); err != nil {
				errs <- fmt.Errorf("node %s: %w", n.name, err)
			}
		})
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	elapsed := time.Since(t0)
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := checkNoOverlap(t, clients[0], "storm", ns); got != nodes {
		t.Errorf("claimed %d blocks, want %d", got, nodes)
	}
	var calls int64
	for _, c := range clients {
		n, _ := c.Calls()
		calls += n
	}
	t.Logf("conflict storm: %d nodes hold a block each after %v, %d API calls (%.1f per node)", nodes, elapsed.Round(time.Millisecond), calls, float64(calls)/nodes)
}

func testSecondCreate(t *testing.T, srv *kubetest.Server) {
	ctx := context.Background()
	ca, cb := agentClient(t, srv, nil), agentClient(t, srv, nil)
	a := newSimNode(t, ca, netConfig("twice", "10.40.0.0/24", 28, "a"))
	b := newSimNode(t, cb, netConfig("twice", "10.40.0.0/24", 28, "b"))
	sub := netip.MustParsePrefix("10.40.0.0/24")
	addr := netip.MustParseAddr("10.40.0.20")
	blk, err := a.src.Containing(ctx, sub, 28, addr, ipam.Held{})
	if err != nil || blk != netip.MustParsePrefix("10.40.0.16/28") {
		t.Fatalf("node a claims the block of %s: %v, %v", addr, blk, err)
	}
	// The same node again (another ADD of it): adopted, no error.
	if _, err := a.src.Containing(ctx, sub, 28, addr, ipam.Held{}); err != nil {
		t.Errorf("node a claims its own block again: %v", err)
	}
	_, err = b.src.Containing(ctx, sub, 28, addr, ipam.Held{})
	if !errors.Is(err, kubestore.ErrNotOwner) || !errors.Is(err, ipam.ErrOutOfRange) {
		t.Errorf("node b claims node a's block: %v, want ErrNotOwner and ipam.ErrOutOfRange", err)
	}
	// The API server itself answers a second create with 409.
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "ipam.medianet.io/v1alpha1", "kind": "IPAMBlock",
		"metadata": map[string]any{"name": kubestore.BlockName("twice", blk)},
		"spec":     map[string]any{"network": "twice", "cidr": blk.String(), "node": "b"},
	}}
	_, err = adminDynamic(t, srv).Resource(blocksGVR).Create(ctx, obj, metav1.CreateOptions{})
	if !apierrors.IsAlreadyExists(err) {
		t.Errorf("second create of %s: %v, want 409 AlreadyExists", obj.GetName(), err)
	}
	// Schema validation refuses an unmasked CIDR.
	obj.SetName("twice.bad")
	_ = unstructured.SetNestedField(obj.Object, "10.40.0.17/28", "spec", "cidr")
	if _, err := adminDynamic(t, srv).Resource(blocksGVR).Create(ctx, obj, metav1.CreateOptions{}); !apierrors.IsInvalid(err) {
		t.Errorf("create with cidr 10.40.0.17/28: %v, want 422 Invalid", err)
	}
}

var blocksGVR = schema.GroupVersionResource{Group: kubestore.Group, Version: kubestore.Version, Resource: "ipamblocks"}

func testConfigMismatch(t *testing.T, srv *kubetest.Server) {
	c := agentClient(t, srv, nil)
	a := newSimNode(t, c, netConfig("mism", "10.50.0.0/24", 28, "a"))
	if _, err := a.claim(context.Background()); err != nil {
		t.Fatal(err)
	}
	b := newSimNode(t, c, netConfig("mism", "10.50.0.0/24", 27, "b"))
	_, err := b.claim(context.Background())
	if !errors.Is(err, kubestore.ErrConfigMismatch) || !errors.Is(err, ipam.ErrConfig) {
		t.Errorf("claim with another block size: %v, want ErrConfigMismatch", err)
	}
	blocks, _ := c.Blocks(context.Background(), "mism", "b")
	if len(blocks) != 0 {
		t.Errorf("node b claimed %v despite the mismatch", blocks)
	}
}

func openStore(t *testing.T) *boltstore.Store {
	t.Helper()
	st, err := boltstore.Open(context.Background(), t.TempDir(), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func newAllocator(t *testing.T, c *kubestore.Client, cfg ipam.Config, st ipam.Store) (*ipam.Allocator, *kubestore.Source) {
	t.Helper()
	src, err := kubestore.NewSource(c, &cfg, st)
	if err != nil {
		t.Fatal(err)
	}
	a, err := ipam.NewAllocator(cfg, st, src)
	if err != nil {
		t.Fatal(err)
	}
	return a, src
}

func testSync(t *testing.T, srv *kubetest.Server) {
	ctx := context.Background()
	c := agentClient(t, srv, func(cfg *kubestore.Config) { cfg.IdleRelease = time.Minute })
	cfg := netConfig("sync", "10.60.0.0/24", 28, "a")
	st := openStore(t)
	a, src := newAllocator(t, c, cfg, st)
	if _, err := a.Allocate(ctx, ipam.Request{ContainerID: "c1", IfName: "eth0"}); err != nil {
		t.Fatal(err)
	}
	if res, err := src.SyncIdle(ctx, st, time.Now()); err != nil || len(res.Marked) != 1 {
		t.Fatalf("first sync: %+v, %v; want the usage published", res, err)
	}
	blocks, _ := c.Blocks(ctx, "sync", "a")
	if len(blocks) != 1 || blocks[0].InUse != 1 || blocks[0].Empty() {
		t.Fatalf("published: %+v, want one block with 1 in use", blocks)
	}
	if res, err := src.SyncIdle(ctx, st, time.Now()); err != nil || len(res.Marked) != 0 {
		t.Fatalf("sync with nothing changed: %+v, %v; want no write", res, err)
	}
	if _, err := c.Reclaim(ctx, "sync", "a", false, false); !errors.Is(err, kubestore.ErrLiveBlocks) {
		t.Errorf("reclaim of a node with a live allocation: %v, want ErrLiveBlocks", err)
	}
	if _, _, err := a.Release(ctx, "c1", "eth0"); err != nil {
		t.Fatal(err)
	}
	if res, err := src.SyncIdle(ctx, st, time.Now()); err != nil || len(res.Marked) != 1 {
		t.Fatalf("sync after the last release: %+v, %v; want the block marked empty", res, err)
	}
	res, err := src.SyncIdle(ctx, st, time.Now().Add(2*time.Minute))
	if err != nil || len(res.Released) != 1 {
		t.Fatalf("sync after the idle time: %+v, %v; want the block given back", res, err)
	}
	if blocks, _ := c.Blocks(ctx, "sync", "a"); len(blocks) != 0 {
		t.Errorf("IPAMBlocks left after the give-back: %+v", blocks)
	}
	// An orphan: a claim the store lacks (an ADD killed after its claim)
	// is adopted by the next sync.
	other := newSimNode(t, c, cfg)
	orphan, err := other.claim(ctx)
	if err != nil {
		t.Fatal(err)
	}
	res, err = src.SyncIdle(ctx, st, time.Now())
	if err != nil || len(res.Adopted) != 1 || res.Adopted[0] != orphan {
		t.Errorf("sync with an orphan claim %s: %+v, %v; want it adopted", orphan, res, err)
	}
}

func testNodeDeleted(t *testing.T, srv *kubetest.Server) {
	ctx := context.Background()
	dyn := adminDynamic(t, srv)
	nodes := schema.GroupVersionResource{Version: "v1", Resource: "nodes"}
	node := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Node", "metadata": map[string]any{"name": "kn-1"},
	}}
	if _, err := dyn.Resource(nodes).Create(ctx, node, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create Node kn-1: %v", err)
	}
	c := agentClient(t, srv, nil)
	kn := newSimNode(t, c, netConfig("gone", "10.70.0.0/24", 28, "kn-1"))
	host := newSimNode(t, c, netConfig("gone", "10.70.0.0/24", 28, "outside-host"))
	for _, n := range []*simNode{kn, kn, host} {
		if _, err := n.claim(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if res, err := c.ReclaimGone(ctx, "gone", false); err != nil || len(res.Freed) != 0 {
		t.Fatalf("reclaim with every node alive: %+v, %v; want nothing freed", res, err)
	}
	if err := dyn.Resource(nodes).Delete(ctx, "kn-1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	res, err := c.ReclaimGone(ctx, "gone", false)
	if err != nil || len(res.Freed) != 2 {
		t.Fatalf("reclaim after Node kn-1 went: %+v, %v; want its 2 blocks freed", res, err)
	}
	left, _ := c.Blocks(ctx, "gone", "")
	if len(left) != 1 || left[0].Node != "outside-host" {
		t.Errorf("blocks left: %+v, want only outside-host's", left)
	}
	// Its blocks are free for others.
	other := newSimNode(t, c, netConfig("gone", "10.70.0.0/24", 28, "kn-2"))
	for range 14 {
		if _, err := other.claim(ctx); err != nil {
			t.Fatalf("claim after the reclaim: %v", err)
		}
	}
	if got := checkNoOverlap(t, c, "gone", []*simNode{other, host}); got != 15 {
		t.Errorf("blocks after the reclaim: %d, want 15", got)
	}
}

func testLostBlock(t *testing.T, srv *kubetest.Server) {
	ctx := context.Background()
	c := agentClient(t, srv, nil)
	cfg := netConfig("lost", "10.80.0.0/24", 28, "a")
	st := openStore(t)
	a, src := newAllocator(t, c, cfg, st)
	al, err := a.Allocate(ctx, ipam.Request{ContainerID: "c1", IfName: "eth0"})
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := al.IPs[0].Prefix(28)
	// Forced reclaim while a is away, and b claims the block.
	if _, err := c.Reclaim(ctx, "lost", "a", true, false); err != nil {
		t.Fatal(err)
	}
	b := newSimNode(t, c, netConfig("lost", "10.80.0.0/24", 28, "b"))
	if _, err := b.src.Containing(ctx, netip.MustParsePrefix("10.80.0.0/24"), 28, blk.Masked().Addr(), ipam.Held{}); err != nil {
		t.Fatal(err)
	}
	res, err := src.SyncIdle(ctx, st, time.Now())
	if err != nil || len(res.Lost) != 1 || res.Lost[0] != blk.Masked() {
		t.Fatalf("sync after losing %s: %+v, %v; want it lost", blk, res, err)
	}
	// The next ADD does not come from the lost block.
	al2, err := a.Allocate(ctx, ipam.Request{ContainerID: "c2", IfName: "eth0"})
	if err != nil {
		t.Fatal(err)
	}
	if blk.Contains(al2.IPs[0]) {
		t.Errorf("address %s allocated from lost block %s", al2.IPs[0], blk)
	}
}

func testAgentRBAC(t *testing.T, srv *kubetest.Server) {
	rc, err := kubetest.RESTConfig(srv.AgentKubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	crds := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	if err := dyn.Resource(crds).Delete(ctx, "ipamblocks.ipam.medianet.io", metav1.DeleteOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("agent deletes the CRD: %v, want 403", err)
	}
	secrets := schema.GroupVersionResource{Version: "v1", Resource: "secrets"}
	if _, err := dyn.Resource(secrets).Namespace("kube-system").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("agent lists secrets: %v, want 403", err)
	}
	networks := schema.GroupVersionResource{Group: kubestore.Group, Version: kubestore.Version, Resource: "ipamnetworks"}
	if err := dyn.Resource(networks).Delete(ctx, "conc", metav1.DeleteOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("agent deletes an IPAMNetwork: %v, want 403", err)
	}
}

// testServerDown: with the API server hung (SIGSTOP), then killed, ADDs
// on a node whose block has room go on without one API call; the ADD
// that needs a claim fails as busy (bounded by the request timeout);
// once the server is back, claims work again.
func testServerDown(t *testing.T, srv *kubetest.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c := agentClient(t, srv, nil)
	st := openStore(t)
	a, _ := newAllocator(t, c, netConfig("down", "10.90.0.0/24", 28, "a"), st)
	if _, err := a.Allocate(ctx, ipam.Request{ContainerID: "first", IfName: "eth0"}); err != nil {
		t.Fatal(err)
	}
	free := freeInStore(t, st, "down")
	if free < 4 {
		t.Fatalf("free addresses in the held block: %d, want at least 4", free)
	}
	t.Cleanup(func() { _ = srv.Resume() })
	for _, phase := range []struct {
		name string
		down func() error
	}{
		{"hung", srv.Pause},
		{"killed", func() error { srv.Kill(); return nil }},
	} {
		if err := phase.down(); err != nil {
			t.Fatal(err)
		}
		calls, _ := c.Calls()
		var ids []string
		for i := range free {
			id := fmt.Sprintf("%s-%d", phase.name, i)
			if _, err := a.Allocate(ctx, ipam.Request{ContainerID: id, IfName: "eth0"}); err != nil {
				t.Fatalf("ADD %s with room while the API server is %s: %v", id, phase.name, err)
			}
			ids = append(ids, id)
		}
		if now, _ := c.Calls(); now != calls {
			t.Errorf("API server %s: %d API calls during %d ADDs with room, want 0", phase.name, now-calls, free)
		}
		_, err := a.Allocate(ctx, ipam.Request{ContainerID: phase.name + "-past", IfName: "eth0"})
		if !errors.Is(err, ipam.ErrBusy) || !errors.Is(err, kubestore.ErrUnavailable) {
			t.Errorf("ADD needing a claim with the API server %s: %v, want ErrUnavailable (ipam.ErrBusy)", phase.name, err)
		}
		for _, id := range ids {
			if _, _, err := a.Release(ctx, id, "eth0"); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	for i := range free + 1 {
		if _, err := a.Allocate(ctx, ipam.Request{ContainerID: fmt.Sprintf("after-%d", i), IfName: "eth0"}); err != nil {
			t.Fatalf("ADD %d after the API server came back (the last one claims): %v", i, err)
		}
	}
	if blocks, err := c.Blocks(ctx, "down", "a"); err != nil || len(blocks) != 2 {
		t.Errorf("blocks of node a after the server came back: %+v, %v; want 2", blocks, err)
	}
}

func freeInStore(t *testing.T, st ipam.Store, network string) int {
	t.Helper()
	free := 0
	err := st.View(context.Background(), func(tx ipam.Tx) error {
		return tx.ForEachBlock(network, func(b ipam.Block) error {
			free += b.Free()
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return free
}
