package docker

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/medianet/medianet/internal/dockertest"
	"github.com/medianet/medianet/internal/nstest"
)

// TestRestart: medianetd restarted, then dockerd restarted. Running
// containers keep their addresses across medianetd's restart; across
// dockerd's (which stops and restarts them) the --ip container keeps its
// address and every container's address stays unique; new containers get
// fresh addresses; removal releases everything and leaves no link.
func TestRestart(t *testing.T) {
	require(t)
	lan := nstest.NewRootLAN(t, "dk")
	lan.AddPeer(t, netip.MustParsePrefix("10.231.5.254/24"))
	d := startMedianetd(t)
	net := uniqueName("mnR")
	network(t, net, "-d", "medianet", "--ipam-driver", "medianet", "--subnet", "10.231.5.0/24", "--gateway", "10.231.5.254",
		"-o", "parent="+lan.Master)
	keep := []string{"--network", net, "--restart", "always", "--stop-timeout", "1"}
	dyn := dockertest.Run(t, keep)
	static := dockertest.Run(t, append(keep, "--ip", "10.231.5.77"))
	before := map[string]netip.Prefix{dyn: addr4(t, dyn), static: addr4(t, static)}

	d.Restart()
	for id, want := range before {
		if got := addr4(t, id); got != want {
			t.Errorf("after medianetd restart %.12s has %s, want %s", id, got, want)
		}
	}
	fresh := dockertest.Run(t, []string{"--network", net, "--stop-timeout", "1"})
	assertUnique(t, dyn, static, fresh)
	ping(t, fresh, before[dyn].Addr())

	restartDockerd(t)
	for _, id := range []string{dyn, static} {
		if err := waitFor(60*time.Second, func() error { return running(id) }); err != nil {
			t.Fatalf("%.12s after dockerd restart: %v", id, err)
		}
	}
	if got, want := addr4(t, static), before[static]; got != want {
		t.Errorf("after dockerd restart the --ip container has %s, want %s", got, want)
	}
	t.Logf("dynamic container: %s before dockerd restart, %s after", before[dyn], addr4(t, dyn))
	newer := dockertest.Run(t, []string{"--network", net})
	assertUnique(t, dyn, static, newer)
	ping(t, newer, addr4(t, static).Addr())
	ping(t, dyn, netip.MustParseAddr("10.231.5.254"))
	// fresh has no restart policy: dockerd stopped it and its address
	// must have been released.
	if got, want := len(d.allocations(t)), 3; got != want {
		t.Errorf("allocations with 3 running containers = %d, want %d: %v", got, want, d.allocations(t))
	}

	docker(t, "rm", "-f", dyn, static, fresh, newer)
	if got := d.allocations(t); len(got) != 0 {
		t.Errorf("allocations after removal = %v, want none", got)
	}
	if got := macvlansOn(t, lan.Master); len(got) != 0 {
		t.Errorf("macvlans left on %s: %v", lan.Master, got)
	}
	docker(t, "network", "rm", net)
	if got := d.stateCounts(t); got["networks"]+got["endpoints"]+got["pools"] != 0 {
		t.Errorf("docker.db after removal holds %v, want nothing", got)
	}
}

func running(id string) error {
	out, err := dockertest.Docker("inspect", "-f", "{{.State.Running}}", id)
	if err != nil {
		return err
	}
	if out != "true" {
		return fmt.Errorf("running=%s: %w", out, errNotYet)
	}
	return nil
}

func assertUnique(t *testing.T, ids ...string) {
	t.Helper()
	seen := map[netip.Addr]string{}
	for _, id := range ids {
		a := addr4(t, id).Addr()
		if other, dup := seen[a]; dup {
			t.Errorf("address %s held by %.12s and %.12s", a, other, id)
		}
		seen[a] = id
	}
}

// restartDockerd stops the running dockerd and starts it again the way
// scripts/deps.sh does. dockerd is running again when this returns.
func restartDockerd(t *testing.T) {
	t.Helper()
	stopDockerd(t)
	startDockerdDeps(t)
}

// stopDockerd stops the running dockerd (the only one: its PID from
// /var/run/docker.pid) with SIGTERM and waits for it to exit.
func stopDockerd(t *testing.T) {
	t.Helper()
	raw, err := os.ReadFile("/var/run/docker.pid")
	if err != nil {
		t.Fatalf("dockerd pid: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatalf("dockerd pid %q: %v", raw, err)
	}
	if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); strings.TrimSpace(string(comm)) != "dockerd" {
		t.Fatalf("pid %d from /var/run/docker.pid is %q, not dockerd", pid, comm)
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatalf("stop dockerd %d: %v", pid, err)
	}
	err = waitFor(90*time.Second, func() error {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			return errNotYet
		}
		return nil
	})
	if err != nil {
		t.Fatalf("dockerd %d did not exit within 90s", pid)
	}
}

// startDockerdDeps starts dockerd as scripts/deps.sh does.
func startDockerdDeps(t *testing.T) {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	deps := filepath.Join(filepath.Dir(file), "..", "..", "scripts", "deps.sh")
	if out, err := exec.Command(deps, "dockerd").CombinedOutput(); err != nil {
		t.Fatalf("restart dockerd with %s: %v\n%s", deps, err, out)
	}
}

// startDockerdLiveRestore starts dockerd with --live-restore, which keeps
// containers running while dockerd itself restarts (what operators of
// media servers run, and what Docker documents for daemon upgrades).
func startDockerdLiveRestore(t *testing.T) {
	t.Helper()
	logf, err := os.OpenFile("/var/log/medianet-dockerd-live-restore.log", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command("dockerd", "--host", "unix:///var/run/docker.sock", "--live-restore")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start dockerd --live-restore: %v", err)
	}
	go cmd.Wait() // reap it when a later stopDockerd ends it
	err = waitFor(60*time.Second, func() error {
		if _, err := dockertest.Docker("info"); err != nil {
			return errNotYet
		}
		return nil
	})
	if err != nil {
		t.Fatalf("dockerd --live-restore did not answer within 60s (log: %s)", logf.Name())
	}
}

// TestRestartLiveRestore: with dockerd's --live-restore, a restart of
// dockerd leaves the containers running, and they keep every address,
// dynamic ones included: medianetd keeps its pools and allocations, and
// dockerd restores its endpoints without asking for new addresses.
func TestRestartLiveRestore(t *testing.T) {
	require(t)
	if out, _ := dockertest.Docker("info", "-f", "{{.Swarm.LocalNodeState}}"); out == "active" {
		t.Fatal("dockerd is in swarm mode, which --live-restore refuses; a swarm test left it behind")
	}
	stopDockerd(t)
	t.Cleanup(func() {
		// Containers were removed by their own cleanups (registered later,
		// so run first); bring back the ordinary dockerd.
		stopDockerd(t)
		startDockerdDeps(t)
	})
	startDockerdLiveRestore(t)

	lan := nstest.NewRootLAN(t, "dl")
	lan.AddPeer(t, netip.MustParsePrefix("10.231.6.254/24"))
	d := startMedianetd(t)
	net := uniqueName("mnL")
	network(t, net, "-d", "medianet", "--ipam-driver", "medianet", "--subnet", "10.231.6.0/24", "--gateway", "10.231.6.254",
		"-o", "parent="+lan.Master)
	dyn := dockertest.Run(t, []string{"--network", net})
	static := dockertest.Run(t, []string{"--network", net, "--ip", "10.231.6.77"})
	before := map[string]netip.Prefix{dyn: addr4(t, dyn), static: addr4(t, static)}

	stopDockerd(t)
	startDockerdLiveRestore(t)
	for id, want := range before {
		if err := running(id); err != nil {
			t.Fatalf("%.12s after a live-restore dockerd restart: %v", id, err)
		}
		if got := addr4(t, id); got != want {
			t.Errorf("after a live-restore dockerd restart %.12s has %s, want %s", id, got, want)
		}
	}
	ping(t, dyn, netip.MustParseAddr("10.231.6.254"))
	ping(t, dyn, before[static].Addr())
	newer := dockertest.Run(t, []string{"--network", net})
	assertUnique(t, dyn, static, newer)
	if got, want := len(d.allocations(t)), 3; got != want {
		t.Errorf("allocations with 3 running containers = %d, want %d: %v", got, want, d.allocations(t))
	}
	docker(t, "rm", "-f", dyn, static, newer)
	if got := d.allocations(t); len(got) != 0 {
		t.Errorf("allocations after removal = %v, want none", got)
	}
	docker(t, "network", "rm", net)
}
