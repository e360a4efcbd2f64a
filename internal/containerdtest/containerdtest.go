package containerdtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Binaries the harness needs, looked up in PATH.
var Binaries = []string{"containerd", "ctr", "containerd-shim-runc-v2", "runc"}

// Options choose the CNI directories; empty ones are made under the
// harness's directory.
type Options struct {
	// ConfDir is CRI's CNI conf_dir (the node's /etc/cni/net.d).
	ConfDir string
	// BinDir is CRI's one CNI bin_dir (the node's /opt/cni/bin).
	BinDir string
}

// Containerd is one running (or stopped) private containerd.
type Containerd struct {
	t       testing.TB
	Dir     string // holds config, root, state, socket and log
	Socket  string // gRPC address
	ConfDir string // CNI conf_dir
	BinDir  string // CNI bin_dir
	Log     string // containerd's log file
	Metrics string // host:port of containerd's Prometheus metrics (metrics.go)

	// Runtime and Images are CRI clients on Socket, as kubelet has.
	Runtime runtime.RuntimeServiceClient
	Images  runtime.ImageServiceClient

	cmd    *exec.Cmd
	done   chan struct{}
	conn   *grpc.ClientConn
	netnss map[string]bool // pod network namespaces seen, removed at teardown
}

// SkipUnlessAvailable skips t unless the test is root, every binary of
// Binaries is installed, and so is the reference loopback plugin, which
// the CRI plugin runs for every pod.
func SkipUnlessAvailable(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("containerdtest: needs root to run containerd and its CRI plugin")
	}
	for _, b := range Binaries {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("containerdtest: %s not found in PATH (Debian packages containerd and runc)", b)
		}
	}
	if _, err := os.Stat(filepath.Join(RefPlugins, "loopback")); err != nil {
		t.Skipf("containerdtest: the loopback CNI plugin is missing (Debian package containernetworking-plugins): %v", err)
	}
}

// Start starts a private containerd, waits until its CRI plugin answers
// and imports the sandbox image. It skips t when containerd is absent.
func Start(t testing.TB, opts Options) *Containerd {
	t.Helper()
	SkipUnlessAvailable(t)
	// A short directory: the socket path must fit in 108 bytes.
	dir, err := os.MkdirTemp("", "mnctd")
	if err != nil {
		t.Fatalf("containerdtest: %v", err)
	}
	c := &Containerd{t: t, Dir: dir, Socket: filepath.Join(dir, "c.sock"), ConfDir: opts.ConfDir, BinDir: opts.BinDir,
		Log: filepath.Join(dir, "containerd.log"), netnss: map[string]bool{}}
	t.Cleanup(c.teardown)
	if c.Metrics, err = freePort(); err != nil {
		t.Fatalf("containerdtest: metrics port: %v", err)
	}
	if c.ConfDir == "" {
		c.ConfDir = filepath.Join(dir, "net.d")
	}
	if c.BinDir == "" {
		c.BinDir = filepath.Join(dir, "cni-bin")
	}
	for _, d := range []string{c.ConfDir, c.BinDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatalf("containerdtest: %v", err)
		}
	}
	if err := os.WriteFile(c.configPath(), []byte(c.config()), 0o600); err != nil {
		t.Fatalf("containerdtest: %v", err)
	}
	if err := c.Start(); err != nil {
		t.Fatalf("containerdtest: %v", err)
	}
	if err := c.importPause(); err != nil {
		t.Fatalf("containerdtest: sandbox image: %v", err)
	}
	return c
}

func (c *Containerd) configPath() string { return filepath.Join(c.Dir, "config.toml") }

// config is containerd's configuration: version 2, everything under Dir,
// the CRI plugin with runc (cgroupfs), overlayfs, the local sandbox image
// and one CNI conf_dir and bin_dir.
func (c *Containerd) config() string {
	return fmt.Sprintf(`version = 2
root = %[1]q
state = %[2]q
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = %[3]q

[metrics]
  address = %[8]q

[plugins."io.containerd.internal.v1.opt"]
  path = %[4]q

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %[5]q
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  systemd_cgroup = false

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %[6]q
    conf_dir = %[7]q
    max_conf_num = 1

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
`, filepath.Join(c.Dir, "root"), filepath.Join(c.Dir, "state"), c.Socket, filepath.Join(c.Dir, "opt"),
		PauseImage, c.BinDir, c.ConfDir, c.Metrics)
}

// Start starts containerd (again, after Stop or Kill) on the same
// configuration and data, and waits up to 60 s for its CRI plugin.
func (c *Containerd) Start() error {
	if c.cmd != nil {
		return errors.New("containerd already running")
	}
	log, err := os.OpenFile(c.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer log.Close()
	cmd := exec.Command("containerd", "--config", c.configPath())
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start containerd: %w", err)
	}
	c.cmd, c.done = cmd, make(chan struct{})
	go func(done chan struct{}) { _ = cmd.Wait(); close(done) }(c.done)
	conn, err := grpc.NewClient("unix://"+c.Socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("grpc client for %s: %w", c.Socket, err)
	}
	c.conn, c.Runtime, c.Images = conn, runtime.NewRuntimeServiceClient(conn), runtime.NewImageServiceClient(conn)
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := c.Runtime.Version(ctx, &runtime.VersionRequest{})
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-c.done:
			return fmt.Errorf("containerd exited: %s", c.logTail())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("CRI on %s did not answer in 60s: %v; log: %s", c.Socket, err, c.logTail())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop stops containerd with SIGTERM (SIGKILL after 15 s) and waits for
// it. Pods keep running: their shims outlive containerd.
func (c *Containerd) Stop() { c.stop(syscall.SIGTERM) }

// Kill kills containerd with SIGKILL, as a crash would, and waits for it.
func (c *Containerd) Kill() { c.stop(syscall.SIGKILL) }

// Restart is Stop then Start; it fails the test when containerd does not
// come back.
func (c *Containerd) Restart() {
	c.t.Helper()
	c.Stop()
	if err := c.Start(); err != nil {
		c.t.Fatalf("containerdtest: restart: %v", err)
	}
}

func (c *Containerd) stop(sig syscall.Signal) {
	if c.cmd == nil {
		return
	}
	// Signal first: closing the client first would cancel the calls in
	// flight, and containerd would kill the CNI plugins they run.
	_ = c.cmd.Process.Signal(sig)
	select {
	case <-c.done:
	case <-time.After(15 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
	c.cmd = nil
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
}

// Ctx returns a context for one CRI call, with kubelet's default runtime
// request timeout (2 minutes).
func Ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 2*time.Minute)
}

// logTail returns the last lines of containerd's log, for messages.
func (c *Containerd) logTail() string {
	b, _ := os.ReadFile(c.Log)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return strings.Join(lines, "\n")
}

// teardown removes every pod, stops containerd, kills its shims, unmounts
// what is left under Dir and removes Dir, and removes the pod network
// namespaces containerd could not remove (a pod whose DEL failed).
func (c *Containerd) teardown() {
	if c.cmd != nil {
		c.RemoveAllPods()
	}
	c.Stop()
	killShims(c.Socket)
	unmountUnder(c.Dir)
	for path := range c.netnss {
		if _, err := os.Stat(path); err == nil {
			_ = syscall.Unmount(path, syscall.MNT_DETACH)
			_ = os.Remove(path)
		}
	}
	if err := os.RemoveAll(c.Dir); err != nil {
		c.t.Errorf("containerdtest: remove %s: %v", c.Dir, err)
	}
}

// RemoveAllPods stops and removes every pod sandbox containerd knows;
// failures are test errors.
func (c *Containerd) RemoveAllPods() {
	ctx, cancel := Ctx()
	defer cancel()
	list, err := c.Runtime.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{})
	if err != nil {
		c.t.Errorf("containerdtest: list pods: %v", err)
		return
	}
	for _, p := range list.Items {
		if st, err := c.Status(p.Id); err == nil && st.Netns != "" {
			c.netnss[st.Netns] = true
		}
		if err := c.StopRemove(p.Id); err != nil {
			c.t.Errorf("containerdtest: %v", err)
		}
	}
}

// killShims kills the containerd-shim-runc-v2 processes serving the
// containerd at socket: their command line carries "-address socket".
func killShims(socket string) {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		args := strings.Split(string(bytes.TrimRight(b, "\x00")), "\x00")
		if len(args) == 0 || filepath.Base(args[0]) != "containerd-shim-runc-v2" {
			continue
		}
		for i := range len(args) - 1 {
			if args[i] == "-address" && args[i+1] == socket {
				var pid int
				if _, err := fmt.Sscanf(p, "/proc/%d/cmdline", &pid); err == nil {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
	}
}

// unmountUnder lazily unmounts every mount point below dir, deepest first.
func unmountUnder(dir string) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var points []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			points = append(points, f[4])
		}
	}
	for i := len(points) - 1; i >= 0; i-- {
		_ = syscall.Unmount(points[i], syscall.MNT_DETACH)
	}
}
