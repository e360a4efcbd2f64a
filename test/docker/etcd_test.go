package docker

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/medianet/medianet/internal/dockertest"
	"github.com/medianet/medianet/internal/etcdtest"
	"github.com/medianet/medianet/internal/nstest"
	"github.com/medianet/medianet/ipam/etcdstore"
)

// TestEtcdBlocks: medianetd --etcd-endpoints claims the block of a
// container's address in etcd for its --node, under --etcd-prefix; a
// second network asking for --ip-range is refused with a message naming
// both flags.
func TestEtcdBlocks(t *testing.T) {
	require(t)
	srv := etcdtest.Start(t, etcdtest.Options{})
	lan := nstest.NewRootLAN(t, "dk")
	ep := strings.Join(srv.Endpoints(), ",")
	startMedianetd(t, "--node", "dk-host-a", "--etcd-endpoints", ep, "--etcd-prefix", "/medianet-dk", "--etcd-sync-interval", "1s")
	name := uniqueName("mnE")
	network(t, name, "-d", "medianet", "--ipam-driver", "medianet", "--subnet", "10.231.31.0/24", "--gateway", "10.231.31.254",
		"--ipam-opt", "block-size=28", "-o", "parent="+lan.Master)
	var blocks []netip.Prefix
	for range 2 {
		id := dockertest.Run(t, []string{"--network", name})
		a := addr4(t, id).Addr()
		blocks = append(blocks, netip.PrefixFrom(a, 28).Masked())
	}
	if blocks[0] != blocks[1] {
		t.Errorf("two containers in blocks %v, want one /28 (claim only when full)", blocks)
	}
	cli, err := etcdstore.New(etcdstore.Config{Endpoints: srv.Endpoints(), Prefix: "/medianet-dk"})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	claims, err := cli.Claims(context.Background(), "docker-10.231.31.0-24", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(claims) != 1 || claims[0].Block != blocks[0] || claims[0].Claim.Node != "dk-host-a" {
		t.Errorf("etcd claims = %+v, want %s claimed by dk-host-a", claims, blocks[0])
	}
	bad := uniqueName("mnR")
	out, err := dockertest.Docker("network", "create", "-d", "medianet", "--ipam-driver", "medianet", "--subnet", "10.231.32.0/24",
		"--ip-range", "10.231.32.0/26", "-o", "parent="+lan.Master, bad)
	if err == nil {
		dockertest.Docker("network", "rm", bad)
		t.Errorf("--ip-range with --etcd-endpoints accepted: %s", out)
	} else if !strings.Contains(err.Error(), "--ip-range") || !strings.Contains(err.Error(), "--etcd-endpoints") {
		t.Errorf("--ip-range with --etcd-endpoints: err = %v, want one naming both", err)
	}
}
