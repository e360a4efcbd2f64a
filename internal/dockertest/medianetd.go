package dockertest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// PluginSocket is where Docker looks for the legacy plugin medianet.
const PluginSocket = "/run/docker/plugins/medianet.sock"

// Medianetd is medianetd run as Docker's legacy socket plugin for a test,
// with a data directory of its own.
type Medianetd struct {
	// DataDir holds its docker.db and ipam.db.
	DataDir string
	// Socket is its plugin socket, as the test process sees it.
	Socket string

	t      testing.TB
	bin    string
	args   []string
	prefix []string // runs it in a host's network namespace
	env    []string
	cmd    *exec.Cmd
	log    *os.File
}

// StartMedianetd runs the medianetd binary bin on PluginSocket with a new
// data directory and the extra args. It is stopped with SIGTERM when t
// ends (after the networks and containers registered later are gone), and
// its log is shown when t failed.
func StartMedianetd(t testing.TB, bin string, args ...string) *Medianetd {
	t.Helper()
	if _, err := os.Stat(PluginSocket); err == nil {
		t.Fatalf("%s exists: another medianetd is serving Docker; stop it first", PluginSocket)
	}
	return startMedianetd(t, &Medianetd{Socket: PluginSocket, bin: bin, args: args})
}

// StartMedianetd runs the medianetd binary bin as h's legacy plugin, as
// a service of that host runs: in h's network and mount namespaces (it
// sees h's /run, where h's dockerd keeps its sandboxes' network
// namespaces: Join's SandboxKey, the endpoint liveness check, the DHCP
// leases' renewals from the containers' links), on the socket h's dockerd
// finds as /run/docker/plugins/medianet.sock, with --node h.Name, asking
// h's engine (DOCKER_HOST) which networks exist, and the extra args. It
// stops when t ends.
func (h *Host) StartMedianetd(t testing.TB, bin string, args ...string) *Medianetd {
	t.Helper()
	h.mu.Lock()
	pid := h.ctd.cmd.Process.Pid // containerd's: its mount namespace is the host's
	h.mu.Unlock()
	return startMedianetd(t, &Medianetd{
		Socket: filepath.Join(h.Dir, "plugins", "medianet.sock"),
		bin:    bin,
		args:   append([]string{"--node", h.Name}, args...),
		prefix: []string{"nsenter", "--net=" + h.NS.Path, fmt.Sprintf("--mount=/proc/%d/ns/mnt", pid), "--"},
		env:    []string{"DOCKER_HOST=unix://" + h.Socket},
	})
}

func startMedianetd(t testing.TB, d *Medianetd) *Medianetd {
	t.Helper()
	log, err := os.Create(filepath.Join(t.TempDir(), "medianetd.log"))
	if err != nil {
		t.Fatal(err)
	}
	d.DataDir, d.t, d.log = t.TempDir(), t, log
	d.Start()
	t.Cleanup(func() {
		d.Stop()
		if t.Failed() {
			out, _ := os.ReadFile(log.Name())
			t.Logf("medianetd log:\n%s", out)
		}
		log.Close()
	})
	return d
}

// Start runs medianetd and waits (up to 5 s) for its socket.
func (d *Medianetd) Start() {
	d.t.Helper()
	argv := append(append(append([]string{}, d.prefix...), d.bin, "--socket", d.Socket, "--data-dir", d.DataDir, "--debug"), d.args...)
	d.cmd = exec.Command(argv[0], argv[1:]...)
	d.cmd.Env = append(os.Environ(), d.env...)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	if err := d.cmd.Start(); err != nil {
		d.t.Fatalf("start medianetd: %v", err)
	}
	for range 250 {
		if _, err := os.Stat(d.Socket); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	out, _ := os.ReadFile(d.log.Name())
	d.t.Fatalf("medianetd did not create %s in 5s: %s", d.Socket, strings.TrimSpace(string(out)))
}

// Stop ends medianetd with SIGTERM, as a service manager does.
func (d *Medianetd) Stop() {
	if d.cmd == nil {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	_ = d.cmd.Wait()
	d.cmd = nil
}

// Restart stops and starts medianetd on the same data directory.
func (d *Medianetd) Restart() {
	d.t.Helper()
	d.Stop()
	d.Start()
}
