package cni_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/medianet/medianet/internal/dhcptest"
	"github.com/medianet/medianet/internal/nstest"
	"github.com/medianet/medianet/internal/podmantest"
)

// TestDHCPPodman runs a container with real podman (runc, CNI backend) on
// a medianet network in DHCP mode: it gets its address from the LAN's
// dnsmasq through the node agent, the server's lease names the container,
// and `podman rm` releases the lease on the server.
func TestDHCPPodman(t *testing.T) {
	h := podmantest.New(t)
	nstest.SkipUnlessRoot(t)
	dhcptest.Skip(t, dhcptest.Dnsmasq)
	h.InstallPlugins(bin("medianet"), bin("medianet-ipam"))
	lan := nstest.NewRootLAN(t, "mncq")
	cfg := dhcpConfig(dhcptest.Dnsmasq, 79)
	srv := dhcptest.Start(t, dhcptest.Dnsmasq, lan, cfg)
	dataDir := t.TempDir()
	agent := dhcptest.StartAgent(t, bins, dataDir)
	network := nstest.UniqueName("mncq-net")
	h.WriteConflist(network, fmt.Appendf(nil, `{
  "cniVersion": "1.0.0",
  "name": %q,
  "plugins": [
    {"type": "medianet", "master": %q, "ipam": {"type": "medianet-ipam", "dataDir": %q, "dhcp": {}}}
  ]
}`, network, lan.Master, dataDir))
	name := nstest.UniqueName("mncq-a")
	c := h.Start(name, network)
	addrs, err := c.Addrs(network)
	if err != nil || len(addrs) != 1 || !cfg.Subnet.Contains(addrs[0].Addr()) {
		t.Fatalf("container %s addresses = %v, %v; want one of %s\nagent:\n%s", name, addrs, err, cfg.Subnet, agent.Log())
	}
	addr := addrs[0].Addr()
	sl, ok, err := srv.LeaseOf(addr)
	// Podman's CNI backend names no pod: the client identifier and the
	// hostname come from the container's ID (its short form).
	if err != nil || !ok || !sl.Active || len(sl.Hostname) != 12 ||
		!strings.Contains(strings.ReplaceAll(sl.ClientID, ":", ""), fmt.Sprintf("%x", "medianet/cni/"+sl.Hostname)) {
		t.Errorf("server's lease of %s = %+v (present %v, %v); want active, naming container %s by its ID", addr, sl, ok, err, name)
	}
	if out, err := h.Run("inspect", "--format", "{{.Id}}", name); err != nil || !strings.HasPrefix(strings.TrimSpace(out), sl.Hostname) {
		t.Errorf("container %s ID %q (%v), want it to start with the lease's hostname %q", name, out, err, sl.Hostname)
	}
	if err := c.Remove(); err != nil {
		t.Fatal(err)
	}
	if err := srv.WaitLease(addr, 5*time.Second, func(l dhcptest.Lease, ok bool) bool { return !ok || !l.Active }); err != nil {
		t.Errorf("podman rm did not release %s on the server: %v", addr, err)
	}
}
