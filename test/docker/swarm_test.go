package docker

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/medianet/medianet/internal/dockertest"
	"github.com/medianet/medianet/internal/nstest"
)

// pluginRef is the managed plugin as networks must name it: Docker
// registers managed network and IPAM plugins under their full reference.
const pluginRef = "medianet:latest"

// TestSwarm: on a one-node Swarm, the managed plugin with SCOPE=global,
// one network created on the manager, a 3-replica service: three distinct
// addresses from the subnet, tasks reach each other over the macvlan.
func TestSwarm(t *testing.T) {
	nstest.SkipUnlessRoot(t)
	dockertest.Require(t)
	if state, _ := dockertest.Docker("info", "--format", "{{.Swarm.LocalNodeState}}"); state != "inactive" {
		t.Skipf("this dockerd's swarm state is %q; the test only inits and leaves a swarm of its own", state)
	}
	if _, err := dockertest.Docker("plugin", "inspect", "medianet"); err == nil {
		t.Fatal("a managed plugin named medianet is already installed; remove it first (docker plugin rm -f medianet)")
	}
	lan := nstest.NewRootLAN(t, "dk")
	lan.AddPeer(t, netip.MustParsePrefix("10.231.6.254/24"))
	_, gwErr := dockertest.Docker("network", "inspect", "docker_gwbridge")

	// The plugin's data directory is made before the cleanup below is
	// registered, so that cleanup (which removes the plugin) runs first and
	// no plugin writes into the directory while it is being removed.
	dataDir := t.TempDir()
	docker(t, "swarm", "init", "--advertise-addr", "127.0.0.1")
	// Leave before removing the plugin: leaving tells every global-scope
	// driver, and a vanished plugin stalls dockerd's ingress removal.
	t.Cleanup(func() {
		dockertest.Docker("swarm", "leave", "--force")
		dockertest.Docker("plugin", "rm", "-f", "medianet")
		if gwErr == nil {
			return
		}
		// swarm init made docker_gwbridge; the ingress sandbox leaves it
		// shortly after the swarm.
		err := waitFor(30*time.Second, func() error { _, err := dockertest.Docker("network", "rm", "docker_gwbridge"); return err })
		if err != nil {
			t.Logf("docker_gwbridge left behind: %v", err)
		}
	})
	installPluginAt(t, "global", dataDir)
	if got := docker(t, "plugin", "inspect", "--format", "{{.Settings.Env}}", pluginRef); !strings.Contains(got, "SCOPE=global") {
		t.Fatalf("plugin settings %s, want SCOPE=global", got)
	}

	net, svc := uniqueName("mnS"), uniqueName("mnsvc")
	subnet := netip.MustParsePrefix("10.231.6.0/24")
	docker(t, "network", "create", "--scope", "swarm", "-d", pluginRef, "--ipam-driver", pluginRef,
		"--subnet", subnet.String(), "--gateway", "10.231.6.254", "-o", "parent="+lan.Master, net)
	t.Cleanup(func() {
		waitFor(30*time.Second, func() error { _, err := dockertest.Docker("network", "rm", net); return err })
	})
	docker(t, "service", "create", "--detach", "--name", svc, "--replicas", "3", "--network", net,
		"--endpoint-mode", "dnsrr", "--no-resolve-image", "--stop-grace-period", "1s", dockertest.Image, "sleep", "600")
	t.Cleanup(func() {
		dockertest.Docker("service", "rm", svc)
		waitFor(30*time.Second, func() error {
			if ids, _ := tasks(svc); len(ids) > 0 {
				return errNotYet
			}
			return nil
		})
	})

	var ids []string
	err := waitFor(90*time.Second, func() error {
		var err error
		if ids, err = tasks(svc); err == nil && len(ids) != 3 {
			err = fmt.Errorf("%d of 3 tasks running: %w", len(ids), errNotYet)
		}
		return err
	})
	if err != nil {
		ps, _ := dockertest.Docker("service", "ps", "--no-trunc", svc)
		t.Fatalf("service %s: %v\n%s", svc, err, ps)
	}
	if got := docker(t, "network", "inspect", "--format", "{{index .Options \"parent\"}}", net); got != lan.Master {
		t.Errorf("network option parent = %q, want %q echoed by AllocateNetwork", got, lan.Master)
	}
	addrs := make([]netip.Addr, len(ids))
	seen := map[netip.Addr]bool{}
	for i, id := range ids {
		addrs[i] = addr4(t, id).Addr()
		if !subnet.Contains(addrs[i]) || addrs[i] == netip.MustParseAddr("10.231.6.254") || seen[addrs[i]] {
			t.Errorf("task %.12s has %s: want a distinct address of %s other than the gateway", id, addrs[i], subnet)
		}
		seen[addrs[i]] = true
	}
	for i, id := range ids {
		ping(t, id, addrs[(i+1)%len(ids)])
	}
	ping(t, ids[0], netip.MustParseAddr("10.231.6.254"))
}

// tasks lists the running containers of a service.
func tasks(svc string) ([]string, error) {
	out, err := dockertest.Docker("ps", "-q", "--filter", "label=com.docker.swarm.service.name="+svc)
	if err != nil || out == "" {
		return nil, err
	}
	return strings.Fields(out), nil
}

// installPluginAt builds the managed plugin with scripts/docker-plugin.sh
// from the test's static medianetd, with its state in dataDir; the caller
// removes the plugin, before dataDir goes.
func installPluginAt(t *testing.T, scope, dataDir string) {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(file), "..", "..", "scripts", "docker-plugin.sh")
	cmd := exec.Command(script)
	cmd.Env = append(os.Environ(), "SCOPE="+scope, "DATA_DIR="+dataDir, "MEDIANETD="+filepath.Join(binDir, "medianetd"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", script, err, out)
	}
}

// TestManagedPluginLocal: the managed plugin built by
// scripts/docker-plugin.sh with the default SCOPE=local serves a
// standalone network: its state lands in the mounted data directory,
// containers reach each other, and removal leaves no link.
func TestManagedPluginLocal(t *testing.T) {
	nstest.SkipUnlessRoot(t)
	dockertest.Require(t)
	if _, err := dockertest.Docker("plugin", "inspect", "medianet"); err == nil {
		t.Fatal("a managed plugin named medianet is already installed; remove it first (docker plugin rm -f medianet)")
	}
	lan := nstest.NewRootLAN(t, "dk")
	dataDir := t.TempDir()
	t.Cleanup(func() { dockertest.Docker("plugin", "rm", "-f", "medianet") })
	installPluginAt(t, "local", dataDir)
	net := uniqueName("mnP")
	network(t, net, "-d", pluginRef, "--ipam-driver", pluginRef, "--subnet", "10.231.21.0/24", "-o", "parent="+lan.Master)
	a := dockertest.Run(t, []string{"--network", net})
	b := dockertest.Run(t, []string{"--network", net})
	ping(t, a, addr4(t, b).Addr())
	for _, f := range []string{"docker.db", "ipam.db"} {
		if _, err := os.Stat(filepath.Join(dataDir, f)); err != nil {
			t.Errorf("plugin state %s not in the data directory: %v", f, err)
		}
	}
	docker(t, "rm", "-f", a, b)
	if got := macvlansOn(t, lan.Master); len(got) != 0 {
		t.Errorf("macvlans left on %s: %v", lan.Master, got)
	}
}
