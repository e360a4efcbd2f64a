package dockertest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// PluginRef is the managed plugin as networks name it: Docker registers
// managed network and IPAM plugins under their full reference.
const PluginRef = "medianet:latest"

// PluginScript is scripts/docker-plugin.sh of this repository.
func PluginScript() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "scripts", "docker-plugin.sh")
}

// PluginDataDir is the directory of h holding the managed plugin's state
// (its data.source).
func (h *Host) PluginDataDir() string { return filepath.Join(h.Dir, "medianet") }

// InstallPlugin installs on h the managed plugin that
// scripts/docker-plugin.sh builds from the static medianetd binary, with
// SCOPE scope, NODE h.Name, its state in PluginDataDir, the engine's own
// socket (ENGINE_SOCKET, in h's mount namespace), DEBUG on and the extra
// `docker plugin set` settings (docker.source=PATH: another socket), and
// enables it.
func (h *Host) InstallPlugin(medianetd, scope string, settings ...string) error {
	cmd := exec.Command(PluginScript())
	cmd.Env = append(os.Environ(), "DOCKER_HOST=unix://"+h.Socket, "SCOPE="+scope, "NODE="+h.Name, "ENGINE_SOCKET=/var/run/docker.sock",
		"DATA_DIR="+h.PluginDataDir(), "MEDIANETD="+medianetd, "NO_ENABLE=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %s: %w\n%s", h.Name, PluginScript(), err, out)
	}
	if _, err := h.Docker(append([]string{"plugin", "set", PluginRef, "DEBUG=1"}, settings...)...); err != nil {
		return err
	}
	id, err := h.Docker("plugin", "inspect", "--format", "{{.Id}}", PluginRef)
	if err != nil {
		return err
	}
	h.mu.Lock()
	h.plugins = append(h.plugins, "/"+id)
	h.mu.Unlock()
	_, err = h.Docker("plugin", "enable", PluginRef)
	return err
}

// InstallPlugin installs the managed plugin on every host at once.
func (hs *Hosts) InstallPlugin(t testing.TB, medianetd, scope string, settings ...string) {
	t.Helper()
	errs := make([]error, len(hs.Hosts))
	var wg sync.WaitGroup
	for i, h := range hs.Hosts {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = h.InstallPlugin(medianetd, scope, settings...) }()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// Swarm makes every host a manager of one swarm: the first inits it, the
// others join it, each advertising its LAN address.
func (hs *Hosts) Swarm() error {
	first := hs.Hosts[0]
	if _, err := first.Docker("swarm", "init", "--advertise-addr", first.Addr.String()); err != nil {
		return err
	}
	token, err := first.Docker("swarm", "join-token", "-q", "manager")
	if err != nil {
		return err
	}
	for _, h := range hs.Hosts[1:] {
		if _, err := h.Docker("swarm", "join", "--token", token, "--advertise-addr", h.Addr.String(), first.Addr.String()+":2377"); err != nil {
			return err
		}
	}
	return nil
}

// NodeID is h's Swarm node ID.
func (h *Host) NodeID() (string, error) {
	return h.Docker("info", "--format", "{{.Swarm.NodeID}}")
}

// IsLeader reports whether h's dockerd runs and leads the swarm.
func (h *Host) IsLeader() bool {
	if !h.Running() {
		return false
	}
	out, err := h.Docker("node", "inspect", "self", "--format", "{{.ManagerStatus.Leader}}")
	return err == nil && out == "true"
}

// WaitLeader waits up to d for a leader among the running hosts, and
// for every running manager to agree on it, and returns it.
func (hs *Hosts) WaitLeader(d time.Duration) (*Host, error) {
	deadline := time.Now().Add(d)
	for {
		var leader *Host
		for _, h := range hs.Hosts {
			if h.IsLeader() {
				leader = h
			}
		}
		if leader != nil && hs.agree(leader) {
			return leader, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("dockertest: no swarm leader agreed on within %s", d)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// agree reports whether every running host names leader's node as the
// leader.
func (hs *Hosts) agree(leader *Host) bool {
	id, err := leader.NodeID()
	if err != nil {
		return false
	}
	for _, h := range hs.Hosts {
		if !h.Running() {
			continue
		}
		out, err := h.Docker("node", "ls", "--filter", "role=manager", "--format", "{{.ID}} {{.ManagerStatus}}")
		if err != nil || !strings.Contains(out, id+" Leader") {
			return false
		}
	}
	return true
}

// Freeze stops h's dockerd with SIGSTOP (its containers run on); Thaw
// resumes it.
func (h *Host) Freeze() error { return h.signal(syscall.SIGSTOP) }

// Thaw resumes a frozen dockerd.
func (h *Host) Thaw() error { return h.signal(syscall.SIGCONT) }

func (h *Host) signal(sig syscall.Signal) error {
	h.mu.Lock()
	p := h.dockerd
	h.mu.Unlock()
	if !p.running() {
		return fmt.Errorf("dockertest: %s: dockerd is not running", h.Name)
	}
	return p.cmd.Process.Signal(sig)
}

// Failover takes the leadership from the leader from (stopped with
// SIGTERM, or killed with SIGKILL) and hands it to to, the other managers
// being the bystanders. Raft elects a candidate only if its log is as
// recent as a majority's: the bystanders are frozen while from commits
// one more entry with to (a node label), so they cannot win the
// election that follows. It returns when every running manager agrees
// that to leads.
//
// On a loaded machine the node elected first can lose its lease before
// the others agree, and a bystander that has caught up meanwhile may win
// the next election. Then from is started again, the bystander hands the
// leadership to to the same way (from being the frozen bystander), and
// from goes down again as a follower (no election) while the bystander
// comes back: the cluster ends as asked, from down and to leading, though
// from's dockerd has run once more in between.
func (hs *Hosts) Failover(from, to *Host, kill bool) error {
	if err := hs.handOver(from, to, kill); err != nil {
		return err
	}
	for try := 0; ; try++ {
		leader, err := hs.WaitLeader(2 * time.Minute)
		if err != nil {
			return err
		}
		if leader == to {
			if from.Running() { // a follower now: no election
				from.down(kill)
			}
			return nil
		}
		if try == 2 {
			return fmt.Errorf("dockertest: failover from %s: %s leads, want %s (after %d hand-overs)", from.Name, leader.Name, to.Name, try)
		}
		if !from.Running() {
			if err := from.TryStart(); err != nil {
				return err
			}
			if leader, err = hs.WaitLeader(2 * time.Minute); err != nil {
				return err
			}
		}
		if err := hs.handOver(leader, to, false); err != nil {
			return err
		}
		if _, err := hs.WaitLeader(2 * time.Minute); err != nil {
			return err
		}
		if err := leader.TryStart(); err != nil {
			return err
		}
	}
}

// handOver freezes the bystanders, commits a node label through from and
// to, stops or kills from and thaws the bystanders.
func (hs *Hosts) handOver(from, to *Host, kill bool) error {
	if !from.IsLeader() {
		return fmt.Errorf("dockertest: failover from %s: it is not the leader", from.Name)
	}
	var frozen []*Host
	defer func() {
		for _, h := range frozen {
			_ = h.Thaw()
		}
	}()
	for _, h := range hs.Hosts {
		if h != from && h != to && h.Running() {
			if err := h.Freeze(); err != nil {
				return err
			}
			frozen = append(frozen, h)
		}
	}
	id, err := from.NodeID()
	if err != nil {
		return err
	}
	if _, err := from.Docker("node", "update", "--label-add", "medianet.failover="+time.Now().Format(time.RFC3339Nano), id); err != nil {
		return err
	}
	from.down(kill)
	for _, h := range frozen {
		if err := h.Thaw(); err != nil {
			return err
		}
	}
	frozen = nil
	return nil
}

// down stops h's dockerd: killed with SIGKILL, or stopped with SIGTERM.
func (h *Host) down(kill bool) {
	if kill {
		h.Kill()
	} else {
		h.Stop()
	}
}
