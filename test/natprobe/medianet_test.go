package natprobe_test

import (
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

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

// medianetSocket is where Docker finds the legacy plugin medianet.
const medianetSocket = "/run/docker/plugins/medianet.sock"

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
		natprobeBin, "serve", "--primary", srv, "--alternate", mnServer2.Addr().String()+":3479")

	startMedianetd(t)
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

// medianetdPath is bin/medianetd from $MEDIANET_BIN, or one built for t.
func medianetdPath(t testing.TB) string {
	t.Helper()
	if dir := os.Getenv("MEDIANET_BIN"); dir != "" {
		return filepath.Join(dir, "medianetd")
	}
	bin := filepath.Join(t.TempDir(), "medianetd")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/medianet/medianet/cmd/medianetd")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build medianetd: %v: %s", err, out)
	}
	return bin
}

// startMedianetd runs medianetd as a legacy plugin on medianetSocket with
// a fresh data directory, stopped with SIGTERM when t ends (after the
// networks and containers registered later are gone).
func startMedianetd(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(medianetSocket); err == nil {
		t.Fatalf("%s exists: another medianetd is serving Docker; stop it first", medianetSocket)
	}
	logPath := filepath.Join(t.TempDir(), "medianetd.log")
	log, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(medianetdPath(t), "--socket", medianetSocket, "--data-dir", t.TempDir(), "--debug")
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start medianetd: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		log.Close()
		if t.Failed() {
			out, _ := os.ReadFile(logPath)
			t.Logf("medianetd log:\n%s", out)
		}
	})
	for range 250 {
		if _, err := os.Stat(medianetSocket); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	out, _ := os.ReadFile(logPath)
	t.Fatalf("medianetd did not create %s in 5s: %s", medianetSocket, strings.TrimSpace(string(out)))
}
