package natprobe_test

import (
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/medianet/medianet/internal/dockertest"
	"github.com/medianet/medianet/internal/nstest"
	"github.com/medianet/medianet/natprobe"
)

// The medianet half's addresses exist only inside namespaces the test
// creates: the LAN (a bridge namespace) and its router, and the server
// namespace behind the router. The root namespace holds only the macvlan
// master, a veth without addresses, so it has no route to either.
var (
	mnLANGateway = netip.MustParsePrefix("10.233.77.254/24")
	mnRouterUp   = netip.MustParsePrefix("198.18.233.1/24")
	mnServer1    = netip.MustParsePrefix("198.18.233.10/24")
	mnServer2    = netip.MustParsePrefix("198.18.233.11/24")
)

// TestMedianetContainer is the other half of the seed's story: a container
// on a medianet network (a macvlan on a LAN the test builds, whose router
// forwards without NAT to the natprobe server's namespace) probed with
// --container against the same kind of server says no NAT and ok.
func TestMedianetContainer(t *testing.T) {
	nstest.SkipUnlessRoot(t)
	dockertest.Require(t)
	if _, err := dockertest.Docker("plugin", "inspect", "medianet"); err == nil {
		t.Fatal("a managed plugin named medianet is installed; remove it (docker plugin rm -f medianet) to run this test")
	}
	lan := nstest.NewRootLAN(t, "npm")
	router := lan.AddPeer(t, mnLANGateway)
	server := nstest.NewNS(t, "npms")
	if err := nstest.Veth(router, "up0", server, "s0"); err != nil {
		t.Fatal(err)
	}
	nstest.AddAddrs(t, router, "up0", mnRouterUp)
	nstest.AddAddrs(t, server, "s0", mnServer1, mnServer2)
	if err := router.Sysctl("net.ipv4.ip_forward", "1"); err != nil {
		t.Fatal(err)
	}
	if out, err := server.Exec("ip", "route", "add", "10.233.77.0/24", "via", mnRouterUp.Addr().String()); err != nil {
		t.Fatalf("server route to the LAN: %v: %s", err, out)
	}
	srv := mnServer1.Addr().String() + ":3478"
	startInNS(t, server.Name, []string{srv, mnServer2.Addr().String() + ":3479"},
		natprobeBin(), "serve", "--primary", srv, "--alternate", mnServer2.Addr().String()+":3479")

	dockertest.StartMedianetd(t, filepath.Join(binDir, "medianetd"))
	name := nstest.UniqueName("npmn")
	if out, err := dockertest.Docker("network", "create", "-d", "medianet", "--ipam-driver", "medianet",
		"--subnet", "10.233.77.0/24", "--gateway", mnLANGateway.Addr().String(), "-o", "parent="+lan.Master, name); err != nil {
		t.Fatalf("docker network create: %v: %s", err, out)
	}
	t.Cleanup(func() { dockertest.Docker("network", "rm", name) })
	id := dockertest.Run(t, []string{"--network", name})

	rep, code := runProbe(t, "probe", "--container", id, "--runtime", "docker", "--server", srv, "--json")
	w := want{natPresent: false, mapping: natprobe.EndpointIndependent, filtering: natprobe.EndpointIndependent,
		classic: natprobe.ClassicOpen, remaps: "false", verdict: natprobe.VerdictOK, exit: 0}
	w.check(t, rep, code)
	local, err := netip.ParseAddrPort(rep.Local)
	if err != nil || !netip.MustParsePrefix("10.233.77.0/24").Contains(local.Addr()) || local.Addr() == mnLANGateway.Addr() {
		t.Errorf("local: got %s, want the container's medianet address in 10.233.77.0/24", rep.Local)
	}
	if rep.Mapped != rep.Local {
		t.Errorf("mapped: got %s, want the container's own %s (no NAT)", rep.Mapped, rep.Local)
	}
}
