package dockertest

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// setup writes the host's configuration and starts its containerd, whose
// mount, UTS and network namespaces dockerd joins.
func (h *Host) setup(daemon map[string]any) error {
	if err := h.writeConfig(daemon); err != nil {
		return err
	}
	mounts, err := cgroupMounts()
	if err != nil {
		return err
	}
	// In the host's new mount namespace (ip netns exec makes one), /run
	// is a tmpfs of its own: /var/run/docker.sock, /run/containerd and
	// /run/docker/plugins are the host's alone.
	script := strings.Join([]string{
		"set -e",
		"hostname " + h.Name,
		mounts,
		"mount -t tmpfs -o mode=755 tmpfs /run",
		"mkdir -p /run/docker/plugins /run/docker/netns /run/containerd",
		"mount --bind " + filepath.Join(h.Dir, "plugins") + " /run/docker/plugins",
		"exec containerd --config " + filepath.Join(h.Dir, "containerd.toml"),
	}, "\n")
	log, err := os.OpenFile(filepath.Join(h.Dir, "containerd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer log.Close()
	// ip netns exec, unshare and sh each exec the next: the PID is
	// containerd's.
	cmd := exec.Command("ip", "netns", "exec", h.NS.Name, "unshare", "--uts", "sh", "-c", script)
	cmd.Stdout, cmd.Stderr = log, log
	p, err := startProc(cmd)
	if err != nil {
		return fmt.Errorf("start containerd: %w", err)
	}
	h.mu.Lock()
	h.ctd = p
	h.mu.Unlock()
	sock := filepath.Join(h.Dir, "containerd.sock")
	err = WaitFor(time.Minute, func() error {
		if !p.running() {
			return nil // reported below
		}
		_, err := os.Stat(sock)
		return err
	})
	if err != nil || !p.running() {
		return fmt.Errorf("containerd did not create %s within a minute (running: %t): %s", sock, p.running(), tail(filepath.Join(h.Dir, "containerd.log"), 20))
	}
	return nil
}

// writeConfig makes the host's directories and writes daemon.json (with
// the extra settings daemon) and containerd.toml.
func (h *Host) writeConfig(daemon map[string]any) error {
	for _, d := range []string{"data", "ctd", "plugins", "medianet"} {
		if err := os.MkdirAll(filepath.Join(h.Dir, d), 0o700); err != nil {
			return err
		}
	}
	conf := map[string]any{"deprecated-key-path": filepath.Join(h.Dir, "key.json")} // an engine ID of its own
	maps.Copy(conf, daemon)
	daemonJSON, err := json.Marshal(conf)
	if err != nil {
		return err
	}
	files := map[string]string{
		"daemon.json": string(daemonJSON),
		"containerd.toml": fmt.Sprintf("version = 2\nroot = %q\nstate = \"/run/containerd\"\n"+
			"disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n[grpc]\n  address = %q\n",
			filepath.Join(h.Dir, "ctd"), filepath.Join(h.Dir, "containerd.sock")),
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(h.Dir, name), []byte(content), 0o600); err != nil {
			return err
		}
	}
	return nil
}

// cgroupMounts is the shell that mounts the cgroup file systems again, as
// the machine has them, under the /sys that ip netns exec mounted.
func cgroupMounts() (string, error) {
	raw, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return "", err
	}
	var out []string
	for line := range strings.SplitSeq(string(raw), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[1], "/sys/fs/cgroup") {
			continue
		}
		switch f[2] {
		case "tmpfs":
			out = append(out, "mount -t tmpfs -o mode=755 cgroup_root "+f[1])
		case "cgroup2":
			out = append(out, "mkdir -p "+f[1], "mount -t cgroup2 cgroup2 "+f[1])
		case "cgroup":
			var opts []string
			for o := range strings.SplitSeq(f[3], ",") {
				switch o {
				case "rw", "ro", "nosuid", "nodev", "noexec", "relatime", "noatime":
				default:
					opts = append(opts, o)
				}
			}
			out = append(out, "mkdir -p "+f[1], "mount -t cgroup -o "+strings.Join(opts, ",")+" cgroup "+f[1])
		}
	}
	if len(out) == 0 {
		return "", fmt.Errorf("no cgroup file system mounted under /sys/fs/cgroup")
	}
	return strings.Join(out, "\n"), nil
}
