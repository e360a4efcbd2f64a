package podmantest_test

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
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

// TestPrivateConfig: podman run through the harness uses the harness's
// containers.conf (runc, cgroupfs, file events, CNI), and its networks
// live only in the harness's directory: the machine's podman and CNI
// configuration (which this test never runs podman on, since that alone
// may write there) are left as they were.
func TestPrivateConfig(t *testing.T) {
	system := []string{"/etc/containers/containers.conf", "/etc/containers/networks", "/etc/cni/net.d"}
	before := fileStates(t, system)
	h := podmantest.New(t)
	got := strings.TrimSpace(h.MustRun("info", "--format",
		"{{.Host.OCIRuntime.Name}} {{.Host.CgroupManager}} {{.Host.NetworkBackend}} {{.Host.EventLogger}}"))
	if want := "runc cgroupfs cni file"; got != want {
		t.Errorf("podman info through the harness = %q, want %q", got, want)
	}
	network := nstest.UniqueName("mpt-priv")
	h.WriteConflist(network, []byte(fmt.Sprintf(`{"cniVersion": "1.0.0", "name": %q,
  "plugins": [{"type": "bridge", "bridge": %q, "ipam": {"type": "host-local", "subnet": "10.86.0.0/24"}}]}`, network, network)))
	if out := h.MustRun("network", "ls", "--format", "{{.Name}}"); !contains(out, network) {
		t.Errorf("harness podman network ls = %q, want %q", out, network)
	}
	if after := fileStates(t, system); !slices.Equal(after, before) {
		t.Errorf("machine's podman configuration changed:\nbefore %q\nafter  %q", before, after)
	}
}

// fileStates describes each path: missing, or its mode, size and mtime
// (for a directory, of each entry).
func fileStates(t *testing.T, paths []string) []string {
	t.Helper()
	var out []string
	for _, p := range paths {
		entries := []string{p}
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			more, _ := filepath.Glob(filepath.Join(p, "*"))
			entries = append(entries, more...)
		}
		for _, e := range entries {
			fi, err := os.Stat(e)
			if err != nil {
				out = append(out, e+": missing")
				continue
			}
			out = append(out, fmt.Sprintf("%s: %v %d %v", e, fi.Mode(), fi.Size(), fi.ModTime().UnixNano()))
		}
	}
	return out
}
