package docker

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/medianet/medianet/internal/dockertest"
	"github.com/medianet/medianet/internal/nstest"
)

// TestReusedAddressAnnounced: a container started with the address of one
// just removed (a restart with --ip) has a new MAC; the LAN router must
// learn it from the container's announcement at once, not after its
// neighbour entry for the address goes stale (tens of seconds without
// media). Docker configures the link after Join, so the driver announces
// from the container's namespace once it is configured.
func TestReusedAddressAnnounced(t *testing.T) {
	require(t)
	lan := nstest.NewRootLAN(t, "da")
	router := lan.AddPeer(t, netip.MustParsePrefix("10.231.6.254/24"))
	startMedianetd(t)
	name := uniqueName("mnAnn")
	network(t, name, "-d", "medianet", "--ipam-driver", "medianet", "--subnet", "10.231.6.0/24",
		"--gateway", "10.231.6.254", "-o", "parent="+lan.Master)
	addr := netip.MustParseAddr("10.231.6.100")
	rh := router.Handle(t)

	first := dockertest.Run(t, []string{"--network", name, "--ip", addr.String()})
	ping(t, first, netip.MustParseAddr("10.231.6.254")) // the router learns the first MAC
	if got := routerMAC(t, rh, addr); got != macOf(t, first) {
		t.Fatalf("router's entry for %s after a ping: %q, want the first container's MAC %q", addr, got, macOf(t, first))
	}
	docker(t, "rm", "-f", first)

	second := dockertest.Run(t, []string{"--network", name, "--ip", addr.String()})
	want := macOf(t, second)
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := routerMAC(t, rh, addr)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("router's entry for %s 10 s after the second container started: %q, want its MAC %q (no announcement)", addr, got, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// macOf returns the MAC of eth0 in a container.
func macOf(t testing.TB, id string) string {
	t.Helper()
	out := strings.TrimSpace(docker(t, "exec", id, "cat", "/sys/class/net/eth0/address"))
	mac, err := net.ParseMAC(out)
	if err != nil {
		t.Fatalf("MAC of %.12s: %q: %v", id, out, err)
	}
	return mac.String()
}

// routerMAC returns the MAC the router's neighbour table holds for addr
// ("" for none).
func routerMAC(t testing.TB, h *netlink.Handle, addr netip.Addr) string {
	t.Helper()
	link, err := h.LinkByName("lan0")
	if err != nil {
		t.Fatal(err)
	}
	neighs, err := h.NeighList(link.Attrs().Index, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range neighs {
		if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Unmap() == addr && n.HardwareAddr != nil {
			return n.HardwareAddr.String()
		}
	}
	return ""
}
