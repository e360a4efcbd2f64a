package etcdstore_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/medianet/medianet/internal/etcdtest"
	"github.com/medianet/medianet/ipam"
	"github.com/medianet/medianet/ipam/etcdstore"
)

func network(subnet string, bits int) etcdstore.Network {
	return etcdstore.Network{Name: "media", Subnets: []etcdstore.Subnet{{Prefix: netip.MustParsePrefix(subnet), BlockBits: bits}}}
}

// clientFor returns a client of srv configured as a node would be.
func clientFor(t *testing.T, srv *etcdtest.Server, mod func(*etcdstore.Config)) *etcdstore.Client {
	t.Helper()
	cfg := etcdstore.Config{Endpoints: srv.Endpoints()}
	if srv.TLS != nil {
		cfg.CAFile, cfg.CertFile, cfg.KeyFile = srv.TLS.CAFile, srv.TLS.ClientCert, srv.TLS.ClientKey
	}
	if srv.User != "" {
		cfg.Username, cfg.Password = srv.User, srv.Password
	}
	if mod != nil {
		mod(&cfg)
	}
	c, err := etcdstore.New(cfg)
	if err != nil {
		t.Fatalf("new client: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// node is one simulated node: its name, client and held blocks.
type node struct {
	name string
	c    *etcdstore.Client
	mu   sync.Mutex
	held map[netip.Prefix]bool
}

// claim claims one more block for n. Claims of one node are serialised,
// as the allocator's are; different nodes claim concurrently. (Two
// concurrent claims of one node may return the same block, adopted by the
// second: harmless, since one node's allocations share its local store.)
func (n *node) claim(ctx context.Context, net etcdstore.Network) (netip.Prefix, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	b, err := n.c.ClaimNext(ctx, net, n.name, net.Subnets[0].Prefix, n.heldSet())
	if err == nil {
		if n.held[b] {
			return b, fmt.Errorf("node %s got block %s it already holds", n.name, b)
		}
		n.held[b] = true
	}
	return b, err
}

// claimConcurrently runs nodes x perNode claims, each node with 4 workers,
// and returns the errors that are not want (nil: none expected).
func claimConcurrently(t *testing.T, nodes []*node, net etcdstore.Network, perNode int, allowed error) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, len(nodes)*perNode)
	for _, n := range nodes {
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < perNode; i += 4 {
					if _, err := n.claim(context.Background(), net); err != nil && !errors.Is(err, allowed) {
						errs <- fmt.Errorf("node %s: %w", n.name, err)
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// checkNoOverlap verifies that every block a node believes it holds is
// claimed by that node in etcd, and no block is held by two nodes.
func checkNoOverlap(t *testing.T, c *etcdstore.Client, net string, nodes []*node) int {
	t.Helper()
	claims, err := c.Claims(context.Background(), net, "")
	if err != nil {
		t.Fatalf("list claims: %v", err)
	}
	owner := map[netip.Prefix]string{}
	for _, bc := range claims {
		owner[bc.Block] = bc.Claim.Node
	}
	believed := map[netip.Prefix]string{}
	total := 0
	for _, n := range nodes {
		for b := range n.held {
			total++
			if other, dup := believed[b]; dup {
				t.Errorf("block %s held by %s and %s", b, other, n.name)
			}
			believed[b] = n.name
			if got := owner[b]; got != n.name {
				t.Errorf("block %s: node %s holds it, etcd says owner %q", b, n.name, got)
			}
		}
	}
	if got, want := len(claims), total; got != want {
		t.Errorf("claims in etcd: got %d, want %d (the blocks nodes hold)", got, want)
	}
	return total
}

func makeNodes(t *testing.T, srv *etcdtest.Server, count int) []*node {
	var nodes []*node
	for i := 0; i < count; i++ {
		nodes = append(nodes, &node{name: fmt.Sprintf("node-%d", i), c: clientFor(t, srv, nil), held: map[netip.Prefix]bool{}})
	}
	return nodes
}

func TestConcurrentClaims(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	tests := []struct {
		name    string
		net     etcdstore.Network
		perNode int
		want    int   // blocks claimed in total
		allowed error // expected error for claims beyond capacity
	}{
		{"ipv4 /16 in /26", network("10.0.0.0/16", 26), 20, 160, nil},
		{"ipv6 /64 in /120", network("fd00::/64", 120), 20, 160, nil},
		{"ipv4 exhausted: 16 blocks for 24 claims", network("10.1.0.0/24", 28), 3, 16, etcdstore.ErrExhausted},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.net.Name = fmt.Sprintf("net%d", i)
			nodes := makeNodes(t, srv, 8)
			claimConcurrently(t, nodes, tt.net, tt.perNode, tt.allowed)
			if got := checkNoOverlap(t, nodes[0].c, tt.net.Name, nodes); got != tt.want {
				t.Errorf("blocks claimed: got %d, want %d", got, tt.want)
			}
		})
	}
}

func TestConfigMismatch(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	c := clientFor(t, srv, nil)
	ctx := context.Background()
	if _, err := c.ClaimNext(ctx, network("10.0.0.0/16", 26), "a", netip.MustParsePrefix("10.0.0.0/16"), ipam.Held{}); err != nil {
		t.Fatalf("first claim: %v", err)
	}
	tests := []struct {
		name string
		net  etcdstore.Network
		want []string
	}{
		{"subnet typo", network("10.1.0.0/16", 26), []string{"10.1.0.0/16", "10.0.0.0/16"}},
		{"subnet added", network2("10.0.0.0/16", "fd00::/64", 26), []string{"fd00::/64", "10.0.0.0/16"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			other := clientFor(t, srv, nil)
			before := other.Writes()
			_, err := other.ClaimNext(ctx, tt.net, "b", tt.net.Subnets[0].Prefix, ipam.Held{})
			if !errors.Is(err, etcdstore.ErrConfigMismatch) {
				t.Fatalf("got %v, want ErrConfigMismatch", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
			if got := other.Writes(); got != before {
				t.Errorf("writes after refusal: got %d, want %d", got, before)
			}
			if err := other.CheckConfig(ctx, tt.net); !errors.Is(err, etcdstore.ErrConfigMismatch) {
				t.Errorf("CheckConfig: got %v, want ErrConfigMismatch", err)
			}
		})
	}
	claims, err := c.Claims(ctx, "media", "")
	if err != nil || len(claims) != 1 {
		t.Fatalf("claims after refusals: got %d, %v; want 1", len(claims), err)
	}
}

func TestUnavailableAndRestart(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	timeout := 500 * time.Millisecond
	c := clientFor(t, srv, func(cfg *etcdstore.Config) { cfg.RequestTimeout = timeout })
	net := network("10.0.0.0/16", 26)
	ctx := context.Background()
	held := map[netip.Prefix]bool{}
	claim := func() (netip.Prefix, error) {
		b, err := c.ClaimNext(ctx, net, "a", net.Subnets[0].Prefix, heldOf(held))
		if err == nil {
			held[b] = true
		}
		return b, err
	}
	if _, err := claim(); err != nil {
		t.Fatalf("claim: %v", err)
	}
	srv.Stop()
	for i := 0; i < 3; i++ {
		start := time.Now()
		_, err := claim()
		took := time.Since(start)
		if !errors.Is(err, etcdstore.ErrUnavailable) {
			t.Fatalf("claim with etcd stopped: got %v, want ErrUnavailable", err)
		}
		if !strings.Contains(err.Error(), srv.Endpoints()[0]) {
			t.Errorf("error %q does not name the endpoint %s", err, srv.Endpoints()[0])
		}
		// Bounded by the client's own deadline (RequestTimeout), not by
		// luck: the failure is that deadline's. How long it takes is
		// logged, never asserted: machines here are noisy.
		if !strings.Contains(err.Error(), "deadline exceeded") {
			t.Errorf("claim with etcd stopped: %v, want it ended by the request timeout's deadline", err)
		}
		t.Logf("claim with etcd stopped failed after %v", took)
	}
	srv.Restart()
	back := time.Now()
	deadline := back.Add(10 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		if _, err = claim(); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("claim after restart: %v", err)
	}
	t.Logf("same client claimed again %v after etcd answered", time.Since(back).Round(time.Millisecond))
	if got := len(held); got != 2 {
		t.Errorf("blocks held: got %d, want 2", got)
	}
}

func TestClosedEndpoint(t *testing.T) {
	ep := etcdtest.ClosedEndpoint(t)
	c, err := etcdstore.New(etcdstore.Config{Endpoints: []string{ep}, RequestTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	net := network("10.0.0.0/16", 26)
	_, err = c.ClaimNext(context.Background(), net, "a", net.Subnets[0].Prefix, ipam.Held{})
	if !errors.Is(err, etcdstore.ErrUnavailable) || !strings.Contains(err.Error(), ep) {
		t.Fatalf("got %v, want ErrUnavailable naming %s", err, ep)
	}
}

// TestCutOffNode: one node's client points at a closed port while the
// others claim; when it returns, its claims still never overlap.
func TestCutOffNode(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	net := network("10.2.0.0/20", 26) // 64 blocks
	nodes := makeNodes(t, srv, 8)
	cut := nodes[7]
	cut.c = clientFor(t, srv, func(cfg *etcdstore.Config) {
		cfg.Endpoints = []string{etcdtest.ClosedEndpoint(t)}
		cfg.RequestTimeout = 300 * time.Millisecond
	})
	// The cut-off node claimed one block before it was cut off.
	first := clientFor(t, srv, nil)
	b, err := first.ClaimNext(context.Background(), net, cut.name, net.Subnets[0].Prefix, ipam.Held{})
	if err != nil {
		t.Fatal(err)
	}
	cut.held[b] = true
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		claimConcurrently(t, nodes[:7], net, 7, nil)
	}()
	for i := 0; i < 3; i++ {
		if _, err := cut.claim(context.Background(), net); !errors.Is(err, etcdstore.ErrUnavailable) {
			t.Errorf("cut-off claim: got %v, want ErrUnavailable", err)
		}
	}
	wg.Wait()
	cut.c = first // it returns, and claims until the subnet is full
	for {
		_, err := cut.claim(context.Background(), net)
		if errors.Is(err, etcdstore.ErrExhausted) {
			break
		}
		if err != nil {
			t.Fatalf("claim after return: %v", err)
		}
	}
	if got, want := checkNoOverlap(t, first, net.Name, nodes), 64; got != want {
		t.Errorf("blocks claimed: got %d, want %d", got, want)
	}
	if got, want := len(cut.held), 64-7*7; got != want {
		t.Errorf("blocks of the returned node: got %d, want %d", got, want)
	}
}

func (n *node) heldSet() ipam.Held { return heldOf(n.held) }

func heldOf(m map[netip.Prefix]bool) ipam.Held {
	var ps []netip.Prefix
	for p := range m {
		ps = append(ps, p)
	}
	return ipam.NewHeld(ps...)
}

func network2(a, b string, bits int) etcdstore.Network {
	n := network(a, bits)
	n.Subnets = append(n.Subnets, etcdstore.Subnet{Prefix: netip.MustParsePrefix(b), BlockBits: 120})
	return n
}
