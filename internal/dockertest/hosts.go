package dockertest

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/medianet/medianet/internal/nstest"
)

// Hosts is several Docker hosts on one machine, for multi-host tests
// (Swarm, standalone hosts sharing a LAN). Each host is a network
// namespace with its own containerd and dockerd: own data root, exec root,
// pidfile, API socket, containerd socket, hostname (a UTS namespace) and a
// private mount namespace, where /run is a tmpfs of its own (so
// /var/run/docker.sock, /run/containerd and the legacy plugin directory
// /run/docker/plugins are the host's alone) and the cgroup file systems
// are mounted again (ip netns exec remounts /sys). A LAN (internal/nstest)
// joins the hosts; every host's interface on it is called Parent.
//
// Cleanup, also after a failed test: dockerd and containerd are stopped,
// then every process left in a host's network namespace, and their
// descendants (shims, containers, managed plugins), is killed, the
// cgroups the host made are removed, and the namespaces and directories
// go.
type Hosts struct {
	// LAN joins the hosts. Its first namespace (LAN.Host, link
	// LAN.Master) is free for the test: the LAN's router, say.
	LAN *nstest.LAN
	// Hosts are named node1, node2, ...
	Hosts []*Host
}

// Parent is the name of every host's interface on the LAN: the same
// macvlan parent everywhere, as Swarm networks need.
const Parent = "lan0"

// HostSubnet holds the hosts' own addresses on the LAN: node i has the
// i-th address. Swarm's control traffic uses them.
var HostSubnet = netip.MustParsePrefix("10.239.0.0/24")

// Host is one Docker host of Hosts.
type Host struct {
	// Name is the hostname, the Swarm node's name and medianet's --node.
	Name string
	// NS is the host's network namespace, holding Parent.
	NS *nstest.NS
	// Addr is the host's address on Parent (in HostSubnet).
	Addr netip.Addr
	// Dir holds the host's data root, sockets, configuration and logs.
	Dir string
	// Socket is dockerd's API socket, as the test process sees it.
	Socket string

	t            testing.TB // NewHosts's, for the teardown
	cgroupParent string
	flags        []string // extra dockerd flags of the current run

	mu      sync.Mutex
	ctd     *proc
	dockerd *proc
	plugins []string // IDs of managed plugins installed (their cgroups)
}

// proc is a started process and a channel closed when it has exited.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

func startProc(cmd *exec.Cmd) (*proc, error) {
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	return p, nil
}

// stop sends sig and waits up to wait for the exit, then kills.
func (p *proc) stop(sig syscall.Signal, wait time.Duration) {
	if p == nil {
		return
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
		return
	case <-time.After(wait):
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

func (p *proc) running() bool {
	if p == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// RequireHosts skips t unless it runs as root with everything Hosts needs
// installed.
func RequireHosts(t testing.TB) {
	t.Helper()
	nstest.SkipUnlessRoot(t)
	for _, b := range []string{"docker", "dockerd", "containerd", "containerd-shim-runc-v2", "ctr", "runc", "ip", "unshare", "nsenter", "iptables"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("dockertest: %s not installed (Debian: docker.io, containerd, runc, iproute2, util-linux, iptables)", b)
		}
	}
	if _, err := os.Stat(BusyboxPath); err != nil {
		t.Skipf("dockertest: %s not installed (busybox-static)", BusyboxPath)
	}
}

// NewHosts starts n Docker hosts on a new LAN, with Image imported into
// each, and stops and removes everything when t ends. daemon[i], when
// given, holds more daemon.json settings of host i (such as
// "swarm-raft-election-tick").
func NewHosts(t testing.TB, n int, daemon ...map[string]any) *Hosts {
	t.Helper()
	RequireHosts(t)
	base := t.TempDir() // removed after the cleanup below has run
	hs := &Hosts{LAN: nstest.NewLAN(t, "mns")}
	for i := range n {
		addr := HostSubnet.Addr()
		for range i + 1 {
			addr = addr.Next()
		}
		h := &Host{
			Name: fmt.Sprintf("node%d", i+1),
			NS:   hs.LAN.AddPeer(t, netip.PrefixFrom(addr, HostSubnet.Bits())),
			Addr: addr,
			Dir:  filepath.Join(base, fmt.Sprintf("h%d", i+1)),
			t:    t,
		}
		h.Socket = filepath.Join(h.Dir, "docker.sock")
		h.cgroupParent = "/" + nstest.UniqueName("mndk")
		hs.Hosts = append(hs.Hosts, h)
	}
	t.Cleanup(func() {
		var wg sync.WaitGroup
		for _, h := range hs.Hosts {
			wg.Add(1)
			go func() { defer wg.Done(); h.teardown() }()
		}
		wg.Wait()
	})
	for i, h := range hs.Hosts {
		var extra map[string]any
		if i < len(daemon) {
			extra = daemon[i]
		}
		if err := h.setup(extra); err != nil {
			t.Fatalf("dockertest: host %s: %v", h.Name, err)
		}
	}
	for _, h := range hs.Hosts {
		if err := h.startDockerd(); err != nil {
			t.Fatalf("dockertest: host %s: %v", h.Name, err)
		}
	}
	rootfs, err := BusyboxRootfs()
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hs.Hosts {
		cmd := exec.Command("docker", "-H", "unix://"+h.Socket, "import", "--change", `CMD ["/bin/sh"]`, "-", Image)
		cmd.Stdin = bytes.NewReader(rootfs)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("dockertest: host %s: docker import %s: %v: %s", h.Name, Image, err, out)
		}
	}
	return hs
}

// startDockerd starts dockerd in the namespaces of the host's containerd
// and waits until it answers.
func (h *Host) startDockerd(flags ...string) error {
	h.mu.Lock()
	ctd := h.ctd
	h.mu.Unlock()
	if !ctd.running() {
		return fmt.Errorf("containerd is not running: %s", tail(filepath.Join(h.Dir, "containerd.log"), 20))
	}
	args := []string{"--target", fmt.Sprint(ctd.cmd.Process.Pid), "--mount", "--uts", "--net", "--",
		"dockerd", "--config-file", filepath.Join(h.Dir, "daemon.json"),
		"--containerd", filepath.Join(h.Dir, "containerd.sock"),
		"--data-root", filepath.Join(h.Dir, "data"), "--exec-root", "/run/docker",
		"--pidfile", filepath.Join(h.Dir, "docker.pid"), "--cgroup-parent", h.cgroupParent,
		"-H", "unix://" + h.Socket, "-H", "unix:///var/run/docker.sock"}
	args = append(args, flags...)
	log, err := os.OpenFile(h.LogPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer log.Close()
	cmd := exec.Command("nsenter", args...)
	cmd.Stdout, cmd.Stderr = log, log
	p, err := startProc(cmd)
	if err != nil {
		return fmt.Errorf("start dockerd: %w", err)
	}
	h.mu.Lock()
	h.dockerd, h.flags = p, flags
	h.mu.Unlock()
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := h.Docker("version", "--format", "{{.Server.Version}}"); err == nil {
			return nil
		}
		if !p.running() {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("dockerd did not answer on %s: %s", h.Socket, tail(h.LogPath(), 30))
}

// Docker runs the docker CLI against the host.
func (h *Host) Docker(args ...string) (string, error) {
	out, err := exec.Command("docker", append([]string{"-H", "unix://" + h.Socket}, args...)...).CombinedOutput()
	s := strings.TrimSpace(string(out))
	if err != nil {
		return s, fmt.Errorf("dockertest: %s: docker %s: %w: %s", h.Name, strings.Join(args, " "), err, s)
	}
	return s, nil
}

// MustDocker is Docker, failing t on error.
func (h *Host) MustDocker(t testing.TB, args ...string) string {
	t.Helper()
	out, err := h.Docker(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Stop stops dockerd with SIGTERM (a clean shutdown), waiting up to a
// minute; containerd and, with live-restore, the containers stay.
func (h *Host) Stop() {
	h.mu.Lock()
	p := h.dockerd
	h.mu.Unlock()
	p.stop(syscall.SIGTERM, time.Minute)
}

// Kill kills dockerd with SIGKILL; containerd, the shims, the containers
// and the managed plugins stay, as when dockerd crashes on a host whose
// containerd is a service of its own.
func (h *Host) Kill() {
	h.mu.Lock()
	p := h.dockerd
	h.mu.Unlock()
	p.stop(syscall.SIGKILL, time.Minute)
}

// Start starts dockerd again (after Stop or Kill) with the extra flags
// (such as --live-restore), failing t when it does not answer.
func (h *Host) Start(t testing.TB, flags ...string) {
	t.Helper()
	if err := h.TryStart(flags...); err != nil {
		t.Fatal(err)
	}
}

// TryStart is Start returning the error, with the end of dockerd's log.
func (h *Host) TryStart(flags ...string) error {
	if err := h.startDockerd(flags...); err != nil {
		return fmt.Errorf("dockertest: host %s: %w", h.Name, err)
	}
	return nil
}

// Running reports whether the host's dockerd runs.
func (h *Host) Running() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.dockerd.running()
}

// teardown stops everything the host runs and removes what it made.
func (h *Host) teardown() {
	if h.t.Failed() {
		h.t.Logf("%s: last lines of %s:\n%s", h.Name, h.LogPath(), tail(h.LogPath(), 15))
		h.t.Logf("%s: medianet's last calls:\n%s", h.Name, pluginCalls(h.LogPath(), 120))
	}
	if dir := os.Getenv("MEDIANET_KEEP_LOGS"); dir != "" {
		h.keepLogs(dir)
	}
	h.mu.Lock()
	dockerd, ctd, plugins := h.dockerd, h.ctd, h.plugins
	h.mu.Unlock()
	dockerd.stop(syscall.SIGTERM, 30*time.Second)
	ctd.stop(syscall.SIGTERM, 10*time.Second)
	if err := killNamespace(h.NS); err != nil {
		h.t.Errorf("dockertest: host %s: %v", h.Name, err)
	}
	for _, g := range append([]string{h.cgroupParent}, plugins...) {
		if err := removeCgroup(g); err != nil {
			h.t.Errorf("dockertest: host %s: %v", h.Name, err)
		}
	}
}
