package docker

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/medianet/medianet/internal/dockertest"
	"github.com/medianet/medianet/internal/nstest"
)

// TestTwoNetworksOneParent: two medianet networks on one parent (which
// Docker's own macvlan refuses), containers with distinct addresses that
// reach each other and the LAN, --ip honoured, --ip-range and
// --aux-address respected; removal releases every address and link.
func TestTwoNetworksOneParent(t *testing.T) {
	require(t)
	lan := nstest.NewRootLAN(t, "dk")
	lan.AddPeer(t, netip.MustParsePrefix("10.231.1.254/24"), netip.MustParsePrefix("10.231.2.254/24")) // the LAN router
	d := startMedianetd(t)
	netA, netB := uniqueName("mnA"), uniqueName("mnB")
	network(t, netA, "-d", "medianet", "--ipam-driver", "medianet", "--subnet", "10.231.1.0/24", "--gateway", "10.231.1.254",
		"--ip-range", "10.231.1.32/28", "--aux-address", "printer=10.231.1.33", "-o", "parent="+lan.Master)
	network(t, netB, "-d", "medianet", "--ipam-driver", "medianet", "--subnet", "10.231.2.0/24", "--gateway", "10.231.2.254",
		"-o", "parent="+lan.Master, "-o", "macvlan_mode=bridge")

	ipRange := netip.MustParsePrefix("10.231.1.32/28")
	var ids []string
	seen := map[netip.Addr]string{}
	for range 3 {
		id := dockertest.Run(t, []string{"--network", netA})
		a := addr4(t, id).Addr()
		if !ipRange.Contains(a) || a == netip.MustParseAddr("10.231.1.33") {
			t.Errorf("dynamic address %s: want inside --ip-range %s and not the --aux-address 10.231.1.33", a, ipRange)
		}
		if other, dup := seen[a]; dup {
			t.Errorf("address %s given to %.12s and %.12s", a, other, id)
		}
		seen[a] = id
		ids = append(ids, id)
	}
	static := dockertest.Run(t, []string{"--network", netA, "--ip", "10.231.1.100"})
	if got, want := addr4(t, static), netip.MustParsePrefix("10.231.1.100/24"); got != want {
		t.Errorf("--ip 10.231.1.100: container has %s, want %s", got, want)
	}
	onB := dockertest.Run(t, []string{"--network", netB})
	if got := addr4(t, onB); !netip.MustParsePrefix("10.231.2.0/24").Contains(got.Addr()) || got.Addr() == netip.MustParseAddr("10.231.2.254") {
		t.Errorf("network B container has %s, want an address of 10.231.2.0/24 other than the gateway", got)
	}
	if out, err := dockertest.Docker("run", "--rm", "--network", netA, "--ip", "10.231.1.100", dockertest.Image, "true"); err == nil {
		t.Errorf("second container with --ip 10.231.1.100 started: %s", out)
	} else if !strings.Contains(err.Error(), "10.231.1.100") {
		t.Errorf("duplicate --ip error does not name the address: %v", err)
	}

	// DisableGatewayService: no docker_gwbridge, eth0 is the only link.
	if out := docker(t, "exec", ids[0], "ip", "-o", "link"); strings.Count(out, "\n") != 1 || !strings.Contains(out, ": eth0@") {
		t.Errorf("container links = %q, want lo and eth0 only", out)
	}
	ping(t, ids[0], addr4(t, ids[1]).Addr())
	ping(t, ids[1], netip.MustParseAddr("10.231.1.100"))
	ping(t, ids[2], netip.MustParseAddr("10.231.1.254")) // the LAN router
	ping(t, onB, netip.MustParseAddr("10.231.2.254"))
	if got := len(d.allocations(t)); got != 6 { // 5 containers and the aux address
		t.Errorf("allocations = %d, want 6 (5 containers, 1 aux address)", got)
	}

	docker(t, append([]string{"rm", "-f", static, onB}, ids...)...)
	if got := d.allocations(t); len(got) != 1 || got[0].ContainerID != "aux-10.231.1.33" {
		t.Errorf("allocations after removal = %v, want only the aux address", got)
	}
	if got := macvlansOn(t, lan.Master); len(got) != 0 {
		t.Errorf("macvlans left on %s after removal: %v", lan.Master, got)
	}
	docker(t, "network", "rm", netA, netB)
	if got := d.allocations(t); len(got) != 0 {
		t.Errorf("allocations after network removal = %v, want none", got)
	}
	if got := d.stateCounts(t); got["networks"]+got["endpoints"]+got["pools"] != 0 {
		t.Errorf("docker.db after removal holds %v, want nothing", got)
	}
}

// TestBadInput: Docker shows an error naming the option, and nothing is
// left half-made (no network, pool, address or link).
func TestBadInput(t *testing.T) {
	require(t)
	lan := nstest.NewRootLAN(t, "dk")
	d := startMedianetd(t)
	good := uniqueName("mnG")
	network(t, good, "-d", "medianet", "--ipam-driver", "medianet", "--subnet", "10.231.3.0/24", "-o", "parent="+lan.Master)
	base := []string{"-d", "medianet", "--ipam-driver", "medianet"}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"missing parent", []string{"--subnet", "10.231.4.0/24"}, "-o parent is required"},
		{"absent parent", []string{"--subnet", "10.231.4.0/24", "-o", "parent=mnnothere0"}, "parent=mnnothere0"},
		{"overlapping subnet", []string{"--subnet", "10.231.3.128/25", "-o", "parent=" + lan.Master}, "overlaps 10.231.3.0/24"},
		{"missing subnet", []string{"-o", "parent=" + lan.Master}, "--subnet is required"},
		{"malformed vlan", []string{"--subnet", "10.231.4.0/24", "-o", "parent=" + lan.Master, "-o", "vlan=abc"}, "-o vlan"},
		{"malformed mode", []string{"--subnet", "10.231.4.0/24", "-o", "parent=" + lan.Master, "-o", "macvlan_mode=bridged"}, "-o macvlan_mode"},
		{"malformed block size", []string{"--subnet", "10.231.4.0/24", "-o", "parent=" + lan.Master, "--ipam-opt", "block-size=big"}, "block-size"},
		{"malformed node ranges", []string{"--subnet", "10.231.4.0/24", "-o", "parent=" + lan.Master, "--ipam-opt", "node-ranges=node-a"}, "node-ranges"},
		{"unknown option", []string{"--subnet", "10.231.4.0/24", "-o", "parent=" + lan.Master, "-o", "partent=x"}, "-o partent"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := uniqueName("mnX")
			out, err := dockertest.Docker(append(append(append([]string{"network", "create"}, base...), tc.args...), name)...)
			if err == nil {
				dockertest.Docker("network", "rm", name)
				t.Fatalf("network created: %s", out)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want one containing %q", err, tc.want)
			}
			if _, err := dockertest.Docker("network", "inspect", name); err == nil {
				t.Errorf("network %s exists after the error", name)
			}
		})
	}
	// An address outside the pool, and one that is the gateway.
	for _, ip := range []string{"10.231.9.5", "10.231.3.1"} {
		if _, err := dockertest.Docker("run", "--rm", "--network", good, "--ip", ip, dockertest.Image, "true"); err == nil || !strings.Contains(err.Error(), ip) {
			t.Errorf("--ip %s: err = %v, want one naming the address", ip, err)
		}
	}
	if got := d.allocations(t); len(got) != 0 {
		t.Errorf("allocations after bad input = %v, want none", got)
	}
	if got := macvlansOn(t, lan.Master); len(got) != 0 {
		t.Errorf("macvlans left on %s: %v", lan.Master, got)
	}
	docker(t, "network", "rm", good)
	if got := d.stateCounts(t); got["networks"]+got["endpoints"]+got["pools"] != 0 {
		t.Errorf("docker.db after bad input holds %v, want nothing", got)
	}
}

// TestDualStack: --ipv6 with an IPv4 and an IPv6 subnet; containers get
// one address of each and reach each other over IPv6.
func TestDualStack(t *testing.T) {
	require(t)
	lan := nstest.NewRootLAN(t, "dk")
	d := startMedianetd(t)
	net := uniqueName("mn6")
	v6 := netip.MustParsePrefix("fd00:231:9::/64")
	network(t, net, "-d", "medianet", "--ipam-driver", "medianet", "--ipv6", "--subnet", "10.231.9.0/24", "--subnet", v6.String(),
		"-o", "parent="+lan.Master)
	a := dockertest.Run(t, []string{"--network", net})
	b := dockertest.Run(t, []string{"--network", net})
	var got [2]netip.Addr
	for i, id := range []string{a, b} {
		out := docker(t, "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.GlobalIPv6Address}}{{end}}", id)
		addr, err := netip.ParseAddr(out)
		if err != nil || !v6.Contains(addr) || addr == netip.MustParseAddr("fd00:231:9::1") {
			t.Fatalf("container %.12s IPv6 address %q: want one of %s other than the gateway", id, out, v6)
		}
		got[i] = addr
		if !strings.Contains(docker(t, "exec", id, "ip", "-6", "addr", "show", "eth0"), addr.String()) {
			t.Errorf("container %.12s: %s not on eth0", id, addr)
		}
	}
	if got[0] == got[1] {
		t.Fatalf("both containers have %s", got[0])
	}
	ping(t, a, got[1])
	if n := len(d.allocations(t)); n != 4 {
		t.Errorf("allocations = %d, want 4 (two families, two containers)", n)
	}
}

// TestVLAN: two networks on one parent and one VLAN share the 802.1q link
// medianetd creates; it goes with the last of them.
func TestVLAN(t *testing.T) {
	require(t)
	if err := nstest.HaveVLAN(t); err != nil {
		t.Skip(err)
	}
	lan := nstest.NewRootLAN(t, "dk")
	startMedianetd(t)
	vlanLink := lan.Master + ".42"
	netA, netB := uniqueName("mnVa"), uniqueName("mnVb")
	for i, n := range []string{netA, netB} {
		network(t, n, "-d", "medianet", "--ipam-driver", "medianet", "--subnet", fmt.Sprintf("10.231.1%d.0/24", i),
			"-o", "parent="+lan.Master, "-o", "vlan=42")
	}
	if _, err := netlink.LinkByName(vlanLink); err != nil {
		t.Fatalf("vlan link %s: %v", vlanLink, err)
	}
	a := dockertest.Run(t, []string{"--network", netA})
	b := dockertest.Run(t, []string{"--network", netA})
	if got := macvlansOn(t, vlanLink); len(got) != 0 {
		t.Errorf("macvlans left in the host namespace on %s: %v", vlanLink, got)
	}
	ping(t, a, addr4(t, b).Addr())
	docker(t, "rm", "-f", a, b)
	docker(t, "network", "rm", netA)
	if _, err := netlink.LinkByName(vlanLink); err != nil {
		t.Errorf("vlan link %s gone while %s uses it: %v", vlanLink, netB, err)
	}
	docker(t, "network", "rm", netB)
	if _, err := netlink.LinkByName(vlanLink); err == nil {
		t.Errorf("vlan link %s left after its last network", vlanLink)
	}
}
