package podmantest_test

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/medianet/medianet/internal/nstest"
	"github.com/medianet/medianet/internal/podmantest"
)

// TestReferenceMacvlan proves the harness: a busybox container on a
// network of the reference macvlan + host-local plugins, whose master is
// a veth in the root namespace made by the test (never eth0), gets an
// address in the subnet, a LAN peer reaches it, and podman rm releases
// the address. The IPAM plugin is host-local installed under another name
// into the harness's plugin directory, which shows podman searches it.
func TestReferenceMacvlan(t *testing.T) {
	h := podmantest.New(t)
	nstest.SkipUnlessRoot(t)
	for _, p := range []string{"/usr/lib/cni/macvlan", "/usr/lib/cni/host-local"} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("reference CNI plugin missing (install containernetworking-plugins): %v", err)
		}
	}
	renamed := filepath.Join(t.TempDir(), "podmantest-hostlocal")
	if err := copyFile("/usr/lib/cni/host-local", renamed); err != nil {
		t.Fatal(err)
	}
	h.InstallPlugins(renamed)
	lan := nstest.NewRootLAN(t, "mpt")
	peer := lan.AddPeer(t, netip.MustParsePrefix("10.85.0.254/24"))
	subnet := netip.MustParsePrefix("10.85.0.0/24")
	network := nstest.UniqueName("mpt-net")
	dataDir := filepath.Join(t.TempDir(), "host-local")
	h.WriteConflist(network, []byte(fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": %q,
  "plugins": [{
    "type": "macvlan", "master": %q, "mode": "bridge",
    "ipam": {"type": "podmantest-hostlocal", "dataDir": %q,
             "ranges": [[{"subnet": %q, "gateway": "10.85.0.254"}]]}
  }]
}`, network, lan.Master, dataDir, subnet)))

	if out := h.MustRun("network", "ls", "--format", "{{.Name}}"); !contains(out, network) {
		t.Fatalf("podman network ls = %q, want it to list %q", out, network)
	}
	c := h.Start(nstest.UniqueName("mpt-c"), network)
	addrs, err := c.Addrs(network)
	if err != nil {
		t.Fatal(err)
	}
	if len(addrs) != 1 || !subnet.Contains(addrs[0].Addr()) || addrs[0].Bits() != 24 {
		t.Fatalf("container addresses = %v, want one in %s", addrs, subnet)
	}
	ip := addrs[0].Addr()
	if out, err := c.Exec("ip", "-4", "addr", "show", "eth0"); err != nil || !contains(out, ip.String()) {
		t.Errorf("ip addr in container = %q, %v; want %s", out, err, ip)
	}
	if err := peer.Ping(ip, 2); err != nil {
		t.Errorf("LAN peer cannot reach container %s: %v", ip, err)
	}
	allocated := filepath.Join(dataDir, network, ip.String())
	if _, err := os.Stat(allocated); err != nil {
		t.Errorf("host-local allocation %s: %v", allocated, err)
	}
	if err := c.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(allocated); !os.IsNotExist(err) {
		t.Errorf("after podman rm, allocation %s: %v, want it gone", allocated, err)
	}
	if err := peer.Ping(ip, 1); err == nil {
		t.Errorf("container address %s still answers after podman rm", ip)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o755)
}
