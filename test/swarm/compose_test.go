package swarm

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/medianet/medianet/internal/dockertest"
)

// composeFile is docs/compose/docker-compose.yml.
func composeFile() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "docs", "compose", "docker-compose.yml")
}

// The compose file's defaults.
var (
	composeSubnet = netip.MustParsePrefix("192.168.100.0/24")
	composeJanus  = netip.MustParseAddr("192.168.100.10")
	composeGW     = netip.MustParseAddr("192.168.100.254")
)

// TestCompose runs docs/compose/docker-compose.yml (its images replaced by
// the test's busybox through a second compose file) with Debian's
// docker-compose on one host, against the legacy socket plugin and
// against the managed plugin: Janus gets its fixed address, the
// videobridge a dynamic one, each on a macvlan of the host's parent; they
// reach each other; `down` leaves no network, address or link.
func TestCompose(t *testing.T) {
	if _, err := exec.LookPath("docker-compose"); err != nil {
		t.Skip("docker-compose not installed (Debian package docker-compose)")
	}
	hs := dockertest.NewHosts(t, 1)
	h := hs.Hosts[0]
	t.Run("legacy plugin", func(t *testing.T) {
		md := h.StartMedianetd(t, medianetdBin())
		compose(t, hs, "medianet", func() []netip.Addr { return mdAllocated(t, md, composeSubnet) })
	})
	t.Run("managed plugin", func(t *testing.T) {
		if err := h.InstallPlugin(medianetdBin(), "local"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _, _ = h.Docker("plugin", "rm", "-f", dockertest.PluginRef) })
		compose(t, hs, dockertest.PluginRef, func() []netip.Addr { return allocated(t, h, "medianet-local", composeSubnet) })
	})
}

// compose runs the compose file up and down on hs's host with network and
// IPAM driver driver; held lists the addresses medianet holds.
func compose(t *testing.T, hs *dockertest.Hosts, driver string, held func() []netip.Addr) {
	t.Helper()
	h := hs.Hosts[0]
	run := composeRunner(t, h, driver)
	t.Cleanup(func() { _, _ = run("down") })
	if _, err := run("up", "-d"); err != nil {
		t.Fatal(err)
	}
	janus, jvb := composeTask(t, h, run, "janus"), composeTask(t, h, run, "jvb")
	checkTasks(t, hs, []task{janus, jvb}, composeSubnet, composeGW)
	if got := janus.addr.Addr(); got != composeJanus {
		t.Errorf("janus has %s, want its ipv4_address %s", got, composeJanus)
	}
	if got := jvb.addr.Addr(); got == composeJanus {
		t.Errorf("jvb got janus's fixed address %s", got)
	}
	ping(t, jvb, composeJanus)
	want := []netip.Addr{janus.addr.Addr(), jvb.addr.Addr()}
	slices.SortFunc(want, netip.Addr.Compare)
	if got := held(); !slices.Equal(got, want) {
		t.Errorf("medianet holds %v, want the two containers' %v", got, want)
	}

	if _, err := run("down"); err != nil {
		t.Fatal(err)
	}
	if out, err := h.Docker("network", "ls", "--filter", "name=mncompose", "--format", "{{.Name}}"); err != nil || out != "" {
		t.Errorf("networks left after down: %q (%v)", out, err)
	}
	if got := held(); len(got) != 0 {
		t.Errorf("medianet holds %v after down, want nothing", got)
	}
	if links, err := h.Macvlans(); err != nil || len(links) > 0 {
		t.Errorf("macvlans left after down: %v (%v)", links, err)
	}
}

// composeRunner returns a function running docker-compose against h on
// the compose file, with a second file giving both services the test's
// image and a long sleep.
func composeRunner(t *testing.T, h *dockertest.Host, driver string) func(args ...string) (string, error) {
	t.Helper()
	override := filepath.Join(t.TempDir(), "test.yml")
	svc := "    image: " + dockertest.Image + "\n    command: [\"sleep\", \"3600\"]\n    restart: \"no\"\n"
	err := os.WriteFile(override, []byte("version: \"2.4\"\nservices:\n  janus:\n"+svc+"  jvb:\n"+svc), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	return func(args ...string) (string, error) {
		cmd := exec.Command("docker-compose", append([]string{"-p", "mncompose", "-f", composeFile(), "-f", override}, args...)...)
		cmd.Env = append(os.Environ(), "DOCKER_HOST=unix://"+h.Socket, "MEDIANET_DRIVER="+driver, "MEDIANET_PARENT="+dockertest.Parent)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return string(out), fmt.Errorf("docker-compose %s: %w\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out)), nil
	}
}

// composeTask returns compose service name's container with its address.
func composeTask(t *testing.T, h *dockertest.Host, run func(...string) (string, error), name string) task {
	t.Helper()
	id, err := run("ps", "-q", name)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(h.MustDocker(t, "inspect", "-f", "{{.State.Pid}}", id))
	if err != nil {
		t.Fatal(err)
	}
	as, err := dockertest.AddrsOf(pid, "eth0")
	if err != nil || len(as) != 1 {
		t.Fatalf("%s: eth0 addresses %v, %v; want one", name, as, err)
	}
	return task{host: h, id: id, pid: pid, addr: as[0]}
}
