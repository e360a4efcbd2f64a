package etcdstore_test

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/medianet/medianet/internal/etcdtest"
	"github.com/medianet/medianet/ipam"
	"github.com/medianet/medianet/ipam/etcdstore"
)

func TestTLS(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{TLS: true})
	if !strings.HasPrefix(srv.Endpoints()[0], "https://") {
		t.Fatalf("endpoint %s is not https", srv.Endpoints()[0])
	}
	net := network("10.3.0.0/16", 26)
	nodes := makeNodes(t, srv, 8)
	claimConcurrently(t, nodes, net, 10, nil)
	if got, want := checkNoOverlap(t, nodes[0].c, net.Name, nodes), 80; got != want {
		t.Errorf("blocks claimed over TLS: got %d, want %d", got, want)
	}

	tests := []struct {
		name string
		mod  func(*etcdstore.Config)
	}{
		{"no client certificate", func(c *etcdstore.Config) { c.CertFile, c.KeyFile = "", "" }},
		{"no CA", func(c *etcdstore.Config) { c.CAFile = "" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := clientFor(t, srv, func(c *etcdstore.Config) { tt.mod(c); c.RequestTimeout = 500 * time.Millisecond })
			_, err := c.ClaimNext(context.Background(), net, "intruder", net.Subnets[0].Prefix, ipam.Held{})
			if err == nil {
				t.Fatal("claim succeeded, want a refusal")
			}
			if !errors.Is(err, etcdstore.ErrUnavailable) || !strings.Contains(err.Error(), srv.Endpoints()[0]) {
				t.Errorf("got %v, want ErrUnavailable naming the endpoint", err)
			}
		})
	}
}

func TestAuth(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{Auth: true})
	net := network("10.4.0.0/16", 26)
	nodes := makeNodes(t, srv, 8)
	claimConcurrently(t, nodes, net, 5, nil)
	if got, want := checkNoOverlap(t, nodes[0].c, net.Name, nodes), 40; got != want {
		t.Errorf("blocks claimed with auth: got %d, want %d", got, want)
	}
	tests := []struct {
		name string
		mod  func(*etcdstore.Config)
	}{
		{"wrong password", func(c *etcdstore.Config) { c.Password = "wrong" }},
		{"prefix outside the user's permission", func(c *etcdstore.Config) { c.Prefix = "/elsewhere" }},
		{"no credentials", func(c *etcdstore.Config) { c.Username, c.Password = "", "" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := clientFor(t, srv, tt.mod)
			_, err := c.ClaimNext(context.Background(), net, "intruder", net.Subnets[0].Prefix, ipam.Held{})
			if !errors.Is(err, etcdstore.ErrAuth) {
				t.Fatalf("got %v, want ErrAuth", err)
			}
			if !strings.Contains(err.Error(), srv.Endpoints()[0]) {
				t.Errorf("error %q does not name the endpoint", err)
			}
		})
	}
}

// TestCertificateAuth: with auth on, a client certificate whose CN is the
// user name authenticates without a password (no bcrypt per connection).
func TestCertificateAuth(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{TLS: true, Auth: true, ClientCN: "medianet"})
	net := network("10.4.0.0/16", 26)
	nodes := makeNodes(t, srv, 8)
	for _, n := range nodes {
		n.c = clientFor(t, srv, func(c *etcdstore.Config) { c.Username, c.Password = "", "" })
	}
	claimConcurrently(t, nodes, net, 5, nil)
	if got, want := checkNoOverlap(t, nodes[0].c, net.Name, nodes), 40; got != want {
		t.Errorf("blocks claimed with certificate auth: got %d, want %d", got, want)
	}
	c := clientFor(t, srv, func(c *etcdstore.Config) { c.Username, c.Password, c.Prefix = "", "", "/elsewhere" })
	if _, err := c.ClaimNext(context.Background(), net, "x", net.Subnets[0].Prefix, ipam.Held{}); !errors.Is(err, etcdstore.ErrAuth) {
		t.Errorf("certificate user outside its prefix: got %v, want ErrAuth", err)
	}
}

func TestReleaseMarkReclaim(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	ctx := context.Background()
	a := clientFor(t, srv, func(c *etcdstore.Config) { c.IdleRelease = time.Millisecond })
	b := clientFor(t, srv, nil)
	net := network("10.5.0.0/24", 26) // 4 blocks
	sub := net.Subnets[0].Prefix
	var heldA []netip.Prefix
	for i := 0; i < 3; i++ {
		blk, err := a.ClaimNext(ctx, net, "a", sub, ipam.NewHeld(heldA...))
		if err != nil {
			t.Fatal(err)
		}
		heldA = append(heldA, blk)
	}

	// Only the owner may release or mark.
	if err := b.Release(ctx, net.Name, "b", heldA[0]); !errors.Is(err, etcdstore.ErrNotOwner) {
		t.Errorf("release by another node: got %v, want ErrNotOwner", err)
	}
	if err := b.MarkUsage(ctx, net.Name, "b", heldA[0], nil); !errors.Is(err, etcdstore.ErrNotOwner) {
		t.Errorf("mark by another node: got %v, want ErrNotOwner", err)
	}
	// A specific block held by a is refused to b, naming a.
	if err := b.ClaimBlock(ctx, net, "b", heldA[1]); !errors.Is(err, etcdstore.ErrNotOwner) || !strings.Contains(err.Error(), `"a"`) {
		t.Errorf("ClaimBlock of a's block: got %v, want ErrNotOwner naming a", err)
	}

	// The owner gives one block back; b can then have it.
	if err := a.Release(ctx, net.Name, "a", heldA[2]); err != nil {
		t.Fatalf("release: %v", err)
	}
	if err := b.ClaimBlock(ctx, net, "b", heldA[2]); err != nil {
		t.Fatalf("claim released block: %v", err)
	}

	// Reclaim refuses while blocks are not marked empty, naming them.
	_, err := b.Reclaim(ctx, "a", etcdstore.ReclaimOptions{})
	if !errors.Is(err, etcdstore.ErrLiveBlocks) || !strings.Contains(err.Error(), heldA[0].String()) {
		t.Fatalf("reclaim of live node: got %v, want ErrLiveBlocks naming %s", err, heldA[0])
	}
	// Marking: a write only on a change.
	w := a.Writes()
	for i := 0; i < 2; i++ {
		if err := a.MarkUsage(ctx, net.Name, "a", heldA[0], nil); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := a.Writes()-w, uint64(1); got != want {
		t.Errorf("writes for marking twice: got %d, want %d", got, want)
	}
	idle, err := a.IdleBlocks(ctx, net.Name, "a", time.Now().Add(time.Second))
	if err != nil || len(idle) != 1 || idle[0].Block != heldA[0] {
		t.Errorf("idle blocks: got %v, %v; want [%s]", idle, err, heldA[0])
	}
	if err := a.MarkUsage(ctx, net.Name, "a", heldA[1], nil); err != nil {
		t.Fatal(err)
	}
	res, err := b.Reclaim(ctx, "a", etcdstore.ReclaimOptions{})
	if err != nil || len(res.Freed) != 2 {
		t.Fatalf("reclaim of empty blocks: got %+v, %v; want 2 freed", res, err)
	}
	left, _ := b.Claims(ctx, net.Name, "a")
	if len(left) != 0 {
		t.Errorf("claims of a after reclaim: %v", left)
	}

	// Force frees live blocks too; a stale release does not touch them.
	if err := a.ClaimBlock(ctx, net, "a", heldA[0]); err != nil {
		t.Fatal(err)
	}
	res, err = b.Reclaim(ctx, "a", etcdstore.ReclaimOptions{Force: true})
	if err != nil || len(res.Freed) != 1 {
		t.Fatalf("forced reclaim: got %+v, %v", res, err)
	}
	// The live block became a tombstone: nobody may take it by request,
	// and the message says whose it was.
	if err := b.ClaimBlock(ctx, net, "b", heldA[0]); !errors.Is(err, etcdstore.ErrNotOwner) || !strings.Contains(err.Error(), `reclaimed by force from node "a"`) {
		t.Errorf("ClaimBlock of a tombstone: got %v, want ErrNotOwner naming node a", err)
	}
	if err := a.Release(ctx, net.Name, "a", heldA[0]); !errors.Is(err, etcdstore.ErrNotOwner) {
		t.Errorf("stale release after reclaim: got %v, want ErrNotOwner", err)
	}
	all, _ := b.Claims(ctx, net.Name, "")
	var tombs int
	for _, bc := range all {
		if bc.Claim.IsTombstone() && bc.Claim.ReclaimedFrom == "a" && bc.Block == heldA[0] {
			tombs++
		}
	}
	if tombs != 1 {
		t.Errorf("claims after a forced reclaim: %+v, want a tombstone of %s reclaimed from a", all, heldA[0])
	}
}
