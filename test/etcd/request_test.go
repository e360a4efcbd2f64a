package etcd

import (
	"context"
	"errors"
	"net/netip"
	"testing"

	"github.com/medianet/medianet/internal/etcdtest"
	"github.com/medianet/medianet/internal/etcdtest/simnode"
	"github.com/medianet/medianet/ipam"
	"github.com/medianet/medianet/ipam/boltstore"
	"github.com/medianet/medianet/ipam/etcdstore"
)

// TestRequestedAddress: a requested address in a free block claims that
// block; one in another node's block is refused with nothing allocated.
func TestRequestedAddress(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	ctx := context.Background()
	nodes := makeNodes(t, 2, etcdConfig(srv), "10.12.0.0/16", 28)
	request := func(n *simnode.Node, cid, ip string) (ipam.Allocation, error) {
		st, err := boltstore.Open(ctx, n.Dir, boltstore.Options{})
		if err != nil {
			return ipam.Allocation{}, err
		}
		defer st.Close()
		cli, err := etcdstore.New(*n.Etcd)
		if err != nil {
			return ipam.Allocation{}, err
		}
		defer cli.Close()
		src, err := etcdstore.NewSource(cli, &n.Cfg, st)
		if err != nil {
			return ipam.Allocation{}, err
		}
		a, err := ipam.NewAllocator(n.Cfg, st, src)
		if err != nil {
			return ipam.Allocation{}, err
		}
		return a.Allocate(ctx, ipam.Request{ContainerID: cid, IfName: "eth0", IPs: []netip.Addr{netip.MustParseAddr(ip)}})
	}
	got, err := request(nodes[0], "media-1", "10.12.200.5")
	if err != nil || got.IPs[0] != netip.MustParseAddr("10.12.200.5") {
		t.Fatalf("request in a free block: %v, %v", got, err)
	}
	_, err = request(nodes[1], "media-2", "10.12.200.6")
	if !errors.Is(err, ipam.ErrOutOfRange) || !errors.Is(err, etcdstore.ErrNotOwner) {
		t.Fatalf("request in node-0's block from node-1: got %v, want ErrOutOfRange", err)
	}
	if as, _ := nodes[1].Allocations(ctx); len(as) != 0 {
		t.Errorf("node-1 allocations after the refusal: %v", as)
	}
	checker, _ := etcdstore.New(*nodes[0].Etcd)
	defer checker.Close()
	if _, err := simnode.CheckCluster(ctx, nodes, checker); err != nil {
		t.Fatal(err)
	}
}
