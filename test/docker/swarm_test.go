package docker

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/medianet/medianet/internal/dockertest"
	"github.com/medianet/medianet/internal/nstest"
)

// pluginRef is the managed plugin as networks must name it: Docker
// registers managed network and IPAM plugins under their full reference.
// (Swarm, on three hosts of their own, is test/swarm's.)
const pluginRef = dockertest.PluginRef

// installPluginAt builds the managed plugin with scripts/docker-plugin.sh
// from the test's static medianetd, with its state in dataDir; the caller
// removes the plugin, before dataDir goes.
func installPluginAt(t *testing.T, scope, dataDir string) {
	t.Helper()
	script := dockertest.PluginScript()
	cmd := exec.Command(script)
	cmd.Env = append(os.Environ(), "SCOPE="+scope, "DATA_DIR="+dataDir, "MEDIANETD="+filepath.Join(binDir, "medianetd"), "ENGINE_SOCKET=/var/run/docker.sock")
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
