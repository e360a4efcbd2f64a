// Package dockertest gives end-to-end tests a running dockerd and a small
// local image, with no registry: it starts dockerd when it is installed
// but not running (as scripts/deps.sh dockerd does), imports a busybox
// image from the static /usr/bin/busybox with docker import (idempotent,
// tag Image), runs containers removed when the test ends, and runs
// medianetd as Docker's legacy plugin (StartMedianetd).
//
// For several hosts, NewHosts starts Docker hosts of the test's own, each
// in a network namespace with its own containerd and dockerd, on one LAN
// (hosts.go): with the managed plugin (InstallPlugin) or the legacy one
// (Host.StartMedianetd), as a Swarm of managers (Swarm, Failover), with
// the kernel's view of their containers (kernel.go), and a relay that
// lets them reach a server of the test process (Forward).
package dockertest

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Image is the tag of the imported busybox image.
const Image = "medianet/busybox:test"

// BusyboxPath is the static busybox the image is made from.
const BusyboxPath = "/usr/bin/busybox"

// applets get a /bin symlink in the image.
var applets = []string{"sh", "sleep", "ip", "ifconfig", "cat", "ls", "nc", "ping", "true"}

var importMu sync.Mutex // serialises the image import within one process

// Docker runs the docker CLI and returns trimmed combined output.
func Docker(args ...string) (string, error) {
	out, err := exec.Command("docker", args...).CombinedOutput()
	s := strings.TrimSpace(string(out))
	if err != nil {
		return s, fmt.Errorf("dockertest: docker %s: %w: %s", strings.Join(args, " "), err, s)
	}
	return s, nil
}

// Require makes sure dockerd answers and the image exists, skipping t when
// docker, dockerd or busybox is not installed.
func Require(t testing.TB) {
	t.Helper()
	for _, b := range []string{"docker", "dockerd"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("dockertest: %s not installed", b)
		}
	}
	if _, err := os.Stat(BusyboxPath); err != nil {
		t.Skipf("dockertest: %s not installed (busybox-static)", BusyboxPath)
	}
	if err := ensureDaemon(); err != nil {
		t.Fatal(err)
	}
	if err := ensureImage(); err != nil {
		t.Fatal(err)
	}
}

func ensureDaemon() error {
	if _, err := Docker("info", "--format", "{{.ServerVersion}}"); err == nil {
		return nil
	}
	log, err := os.OpenFile("/var/log/medianet-dockerd.log", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("dockertest: open dockerd log: %w", err)
	}
	defer log.Close()
	cmd := exec.Command("dockerd", "--host", "unix:///var/run/docker.sock")
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // outlives the test
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("dockertest: start dockerd: %w", err)
	}
	cmd.Process.Release()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := Docker("info", "--format", "{{.ServerVersion}}"); err == nil {
			return nil
		}
		time.Sleep(500 * time.Millisecond)
	}
	return fmt.Errorf("dockertest: dockerd did not answer within 30s (see /var/log/medianet-dockerd.log)")
}

func ensureImage() error {
	importMu.Lock()
	defer importMu.Unlock()
	if _, err := Docker("image", "inspect", "--format", "{{.Id}}", Image); err == nil {
		return nil
	}
	rootfs, err := BusyboxRootfs()
	if err != nil {
		return err
	}
	cmd := exec.Command("docker", "import", "--change", `CMD ["/bin/sh"]`, "-", Image)
	cmd.Stdin = bytes.NewReader(rootfs)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("dockertest: docker import %s: %w: %s", Image, err, out)
	}
	return nil
}

// BusyboxRootfs builds a root file system tarball holding busybox and its
// applets, for docker import or podman import.
func BusyboxRootfs() ([]byte, error) {
	bb, err := os.ReadFile(BusyboxPath)
	if err != nil {
		return nil, fmt.Errorf("dockertest: read %s: %w", BusyboxPath, err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, d := range []string{"bin/", "etc/", "tmp/", "proc/", "sys/", "dev/"} {
		if err := tw.WriteHeader(&tar.Header{Name: d, Typeflag: tar.TypeDir, Mode: 0o755}); err != nil {
			return nil, err
		}
	}
	if err := tw.WriteHeader(&tar.Header{Name: "bin/busybox", Mode: 0o755, Size: int64(len(bb))}); err != nil {
		return nil, err
	}
	if _, err := io.Copy(tw, bytes.NewReader(bb)); err != nil {
		return nil, err
	}
	for _, a := range applets {
		if err := tw.WriteHeader(&tar.Header{Name: "bin/" + a, Typeflag: tar.TypeSymlink, Linkname: "busybox", Mode: 0o777}); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Run starts a detached container of Image running args (default a long
// sleep) with the extra docker run flags, removed when t ends; it returns
// the container ID.
func Run(t testing.TB, flags []string, args ...string) string {
	t.Helper()
	if len(args) == 0 {
		args = []string{"sleep", "600"}
	}
	runArgs := append(append([]string{"run", "-d", "--label", "medianet-test=1"}, flags...), Image)
	id, err := Docker(append(runArgs, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { Docker("rm", "-f", id) })
	return id
}

// Pid returns the host PID of a running container's init.
func Pid(id string) (string, error) {
	return Docker("inspect", "-f", "{{.State.Pid}}", id)
}
