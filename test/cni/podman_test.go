package cni_test

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/medianet/medianet/internal/nstest"
	"github.com/medianet/medianet/internal/podmantest"
)

// TestPodman runs containers with real podman (runc, CNI backend) on a
// medianet network chained with the reference tuning and bandwidth
// plugins: they get addresses from medianet-ipam, reach each other and a
// LAN peer, the tuning sysctl is applied, and `podman rm` releases the
// address. The master is a veth end in the root namespace made by the test.
func TestPodman(t *testing.T) {
	h := podmantest.New(t)
	nstest.SkipUnlessRoot(t)
	skipWithoutRef(t, "tuning", "bandwidth")
	h.InstallPlugins(bin("medianet"), bin("medianet-ipam"))
	lan := nstest.NewRootLAN(t, "mncp")
	peer := lan.AddPeer(t, netip.MustParsePrefix("10.98.0.254/24"))
	network := nstest.UniqueName("mncp-net")
	dataDir := t.TempDir()
	h.WriteConflist(network, fmt.Appendf(nil, `{
  "cniVersion": "1.0.0",
  "name": %q,
  "plugins": [
    {"type": "medianet", "master": %q, "mode": "bridge",
     "capabilities": {"ips": true},
     "ipam": {"type": "medianet-ipam", "subnet": "10.98.0.0/24", "gateway": "10.98.0.254",
              "node": "node-a", "dataDir": %q}},
    {"type": "tuning", "sysctl": {"net.ipv4.conf.eth0.arp_ignore": "1"}},
    {"type": "bandwidth", "capabilities": {"bandwidth": true}}
  ]
}`, network, lan.Master, dataDir))

	a := h.Start(nstest.UniqueName("mncp-a"), network)
	b := h.Start(nstest.UniqueName("mncp-b"), network, "--ip", "10.98.0.77")
	var ips []netip.Addr
	for _, c := range []*podmantest.Container{a, b} {
		addrs, err := c.Addrs(network)
		if err != nil || len(addrs) != 1 {
			t.Fatalf("container %s addresses = %v, %v; want one", c.Name, addrs, err)
		}
		ips = append(ips, addrs[0].Addr())
	}
	if ips[1] != netip.MustParseAddr("10.98.0.77") {
		t.Errorf("container b got %s, want the requested 10.98.0.77", ips[1])
	}
	if out, err := a.Exec("cat", "/proc/sys/net/ipv4/conf/eth0/arp_ignore"); err != nil || strings.TrimSpace(out) != "1" {
		t.Errorf("tuning sysctl arp_ignore in container = %q, %v; want 1", out, err)
	}
	if out, err := a.Exec("ping", "-c", "2", "-W", "2", ips[1].String()); err != nil {
		t.Errorf("container a -> b %s: %v %s", ips[1], err, out)
	}
	if err := peer.Ping(ips[0], 2); err != nil {
		t.Errorf("LAN peer -> container a %s: %v", ips[0], err)
	}
	if as := allocations(t, dataDir, network); len(as) != 2 {
		t.Fatalf("allocations with two containers = %+v, want 2", as)
	}
	if err := a.Remove(); err != nil {
		t.Fatal(err)
	}
	as := allocations(t, dataDir, network)
	if len(as) != 1 || as[0].IPs[0] != ips[1] {
		t.Errorf("allocations after podman rm of a = %+v, want only b's %s", as, ips[1])
	}
}
