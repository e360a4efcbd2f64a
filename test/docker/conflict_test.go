package docker

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/medianet/medianet/internal/dockertest"
	"github.com/medianet/medianet/internal/nstest"
)

// TestConflictCheck: a printer on the LAN holds the first address of the
// network; Docker's RequestAddress (the endpoint has no link yet: the
// probe goes from a short-lived macvlan in an anonymous namespace on the
// parent) never hands it out: the container gets the next one, the
// printer's is quarantined with its MAC, and --ip with it fails naming
// the MAC. A network with --ipam-opt conflict-check=0 does not probe.
func TestConflictCheck(t *testing.T) {
	require(t)
	lan := nstest.NewRootLAN(t, "dkc")
	printerAddr := netip.MustParseAddr("10.232.1.1")
	printer := lan.AddPeer(t, netip.PrefixFrom(printerAddr, 24))
	mac := printer.MAC(t, "lan0").String()
	d := startMedianetd(t)
	net := uniqueName("mnC")
	network(t, net, "-d", "medianet", "--ipam-driver", "medianet", "--subnet", "10.232.1.0/24", "--gateway", "10.232.1.254",
		"-o", "parent="+lan.Master)

	id := dockertest.Run(t, []string{"--network", net})
	if got := addr4(t, id).Addr(); got == printerAddr {
		t.Fatalf("the container got %s, which the printer answers for", got)
	}
	found := false
	for _, a := range d.allocations(t) {
		if a.IsConflict() && a.Conflict == mac && len(a.IPs) == 1 && a.IPs[0] == printerAddr && a.ContainerID == "conflict:"+mac {
			found = true
		}
	}
	if !found {
		t.Fatalf("allocations %+v: want %s quarantined, answered by the printer's %s", d.allocations(t), printerAddr, mac)
	}
	out, err := dockertest.Docker("run", "--rm", "--network", net, "--ip", printerAddr.String(), dockertest.Image, "true")
	if err == nil || !strings.Contains(err.Error(), mac) {
		t.Errorf("--ip %s, which the printer holds: %v %s; want an error naming %s", printerAddr, err, out, mac)
	}

	off := uniqueName("mnO")
	network(t, off, "-d", "medianet", "--ipam-driver", "medianet", "--subnet", "10.232.2.0/24", "--gateway", "10.232.2.254",
		"--ipam-opt", "conflict-check=0", "-o", "parent="+lan.Master)
	if _, err := printer.Exec("ip", "addr", "add", "10.232.2.1/24", "dev", "lan0"); err != nil {
		t.Fatal(err)
	}
	offID := dockertest.Run(t, []string{"--network", off})
	if got := addr4(t, offID).Addr(); got != netip.MustParseAddr("10.232.2.1") {
		t.Errorf("with conflict-check=0 the container got %s, want 10.232.2.1 (no probe)", got)
	}

	// The quarantine goes with its network.
	docker(t, "rm", "-f", id, offID)
	docker(t, "network", "rm", net, off)
	if got := d.allocations(t); len(got) != 0 {
		t.Errorf("allocations after the networks were removed: %+v, want none", got)
	}
}
