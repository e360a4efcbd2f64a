package media_test

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/medianet/medianet/internal/janustest"
	"github.com/medianet/medianet/internal/nstest"
	"github.com/medianet/medianet/internal/podmantest"
)

// The CNI placement's LAN: its master is a veth end in the root
// namespace (podman runs the plugin there), its router forwards without
// NAT to natlab's internet, as the Docker host's LAN router does.
var (
	cniRouterLAN = netip.MustParsePrefix("10.238.0.254/24")
	cniRouterWAN = netip.MustParsePrefix("198.18.251.1/16")
	cniPrefix    = netip.MustParsePrefix("10.238.0.0/24")
	cniJanus     = netip.MustParseAddr("10.238.0.100")
)

// startCNIJanus runs Janus with cfg under podman (runc, the CNI backend)
// on a medianet network of the medianet and medianet-ipam plugins, at
// cniJanus, and records it as the CNI placement. Call it after the sites
// are added (the world routes cniPrefix to the LAN's router).
func (l *lab) startCNIJanus(t *testing.T, cfg janustest.Config) *janusC {
	t.Helper()
	h := podmantest.New(t)
	h.InstallPlugins(filepath.Join(binDir(t), "medianet"), filepath.Join(binDir(t), "medianet-ipam"))
	lan := nstest.NewRootLAN(t, "mnmc")
	router := lan.AddPeer(t, cniRouterLAN)
	if err := router.Sysctl("net.ipv4.ip_forward", "1"); err != nil {
		t.Fatal(err)
	}
	l.world.Attach(t, router, "wan0", cniRouterWAN, cniPrefix)
	network := nstest.UniqueName("mnmc-net")
	h.WriteConflist(network, fmt.Appendf(nil, `{
  "cniVersion": "1.0.0",
  "name": %q,
  "plugins": [
    {"type": "medianet", "master": %q, "mode": "bridge",
     "capabilities": {"ips": true},
     "ipam": {"type": "medianet-ipam", "subnet": %q, "gateway": %q,
              "node": "node-a", "dataDir": %q}}
  ]
}`, network, lan.Master, cniPrefix, cniRouterLAN.Addr(), t.TempDir()))
	if err := janustest.ImportWith(t.TempDir(), h.Command); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Run("rmi", "-f", janustest.Image) })
	dir := t.TempDir()
	if err := cfg.Write(dir); err != nil {
		t.Fatal(err)
	}
	name := nstest.UniqueName("mnmc-janus")
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := h.Run("logs", "--tail", "40", name)
			t.Logf("janus %s log:\n%s", CNI, out)
		}
		h.Run("rm", "-f", "-t", "0", name)
	})
	h.MustRun("run", "-d", "--name", name, "--network", network, "--ip", cniJanus.String(),
		"-v", dir+":"+janustest.ConfDir+":ro", janustest.Image)
	pid := strings.TrimSpace(h.MustRun("inspect", "-f", "{{.State.Pid}}", name))
	j := &janusC{Placement: CNI, ID: name, URL: fmt.Sprintf("http://%s:%d/janus", cniJanus, cfg.HTTPPort), Netns: "/proc/" + pid + "/ns/net"}
	l.await(t, j, router.Name, func() string {
		out, _ := h.Run("logs", "--tail", "40", name)
		return out
	})
	return j
}
