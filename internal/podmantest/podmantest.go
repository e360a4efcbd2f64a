// Package podmantest runs real podman (4.x, CNI backend, runc) for
// end-to-end tests without touching the machine's CNI setup: each Harness
// has its own network config directory (podman --network-config-dir) and
// its own CNI plugin directory, listed first in cni_plugin_dirs of a
// private containers.conf that podman reads through CONTAINERS_CONF (a
// copy of /etc/containers/containers.conf with that one key changed).
// The plugin binaries of the test (medianet, medianet-ipam) go there with
// InstallPlugins; the reference plugins in /usr/lib/cni stay reachable
// after it.
//
// Images come from no registry: ImportBusybox builds a minimal root
// filesystem from the static busybox binary (/usr/bin/busybox, Debian's
// busybox-static) and `podman import`s it once as BusyboxImage.
//
// Containers started through the Harness are removed by t.Cleanup, also
// when the test fails. Networks live only in the harness's config
// directory, so `podman network ls` elsewhere never sees them.
package podmantest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
)

// BusyboxImage is the tag ImportBusybox gives the image.
const BusyboxImage = "localhost/medianet-busybox:test"

// SystemContainersConf is the containers.conf the harness copies.
var SystemContainersConf = "/etc/containers/containers.conf"

// Harness runs podman with a private network config and plugin directory.
type Harness struct {
	t         testing.TB
	Podman    string // podman binary
	ConfDir   string // CNI network config directory (--network-config-dir)
	PluginDir string // CNI plugin directory searched first
	ConfFile  string // private containers.conf (CONTAINERS_CONF)
}

// New returns a Harness, skipping t when the podman binary is absent or
// the test is not root (rootless podman has no CNI macvlan).
func New(t testing.TB) *Harness {
	t.Helper()
	bin, err := exec.LookPath("podman")
	if err != nil {
		t.Skip("podmantest: podman binary not found in PATH; install podman")
	}
	if os.Geteuid() != 0 {
		t.Skip("podmantest: needs root (rootful podman with the CNI backend)")
	}
	dir := t.TempDir()
	h := &Harness{t: t, Podman: bin, ConfDir: filepath.Join(dir, "net.d"),
		PluginDir: filepath.Join(dir, "cni-bin"), ConfFile: filepath.Join(dir, "containers.conf")}
	for _, d := range []string{h.ConfDir, h.PluginDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatalf("podmantest: %v", err)
		}
	}
	if err := writeConf(SystemContainersConf, h.ConfFile, h.PluginDir); err != nil {
		t.Fatalf("podmantest: %v", err)
	}
	return h
}

var pluginDirsRE = regexp.MustCompile(`(?m)^\s*cni_plugin_dirs\s*=.*$`)

// writeConf copies src to dst with cni_plugin_dirs led by pluginDir and
// the CNI backend selected.
func writeConf(src, dst, pluginDir string) error {
	conf, err := os.ReadFile(src)
	if err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("read %s: %w", src, err)
	}
	dirs := fmt.Sprintf(`cni_plugin_dirs = [%q, "/usr/local/libexec/cni", "/usr/lib/cni", "/opt/cni/bin"]`, pluginDir)
	s := string(conf)
	switch {
	case pluginDirsRE.MatchString(s):
		s = pluginDirsRE.ReplaceAllLiteralString(s, dirs)
	case strings.Contains(s, "[network]"):
		s = strings.Replace(s, "[network]", "[network]\n"+dirs, 1)
	default:
		s += "\n[network]\n" + dirs + "\n"
	}
	if !regexp.MustCompile(`(?m)^\s*network_backend\s*=`).MatchString(s) {
		s = strings.Replace(s, "[network]", "[network]\nnetwork_backend = \"cni\"", 1)
	}
	s = capNofile(s)
	if err := os.WriteFile(dst, []byte(s), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", dst, err)
	}
	return nil
}

// Command returns an exec.Cmd for podman with the harness's configuration.
func (h *Harness) Command(args ...string) *exec.Cmd {
	argv := append([]string{"--network-config-dir", h.ConfDir}, args...)
	cmd := exec.Command(h.Podman, argv...)
	cmd.Env = append(os.Environ(), "CONTAINERS_CONF="+h.ConfFile)
	return cmd
}

// Run runs podman and returns its stdout; the error carries stderr.
func (h *Harness) Run(args ...string) (string, error) {
	cmd := h.Command(args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("podman %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// MustRun is Run that fails the test on error.
func (h *Harness) MustRun(args ...string) string {
	h.t.Helper()
	out, err := h.Run(args...)
	if err != nil {
		h.t.Fatalf("podmantest: %v", err)
	}
	return out
}

// WriteConflist writes conflist (JSON) as <ConfDir>/<name>.conflist; its
// "name" field is the podman network name.
func (h *Harness) WriteConflist(name string, conflist []byte) string {
	h.t.Helper()
	if !json.Valid(conflist) {
		h.t.Fatalf("podmantest: conflist %q is not valid JSON", name)
	}
	path := filepath.Join(h.ConfDir, name+".conflist")
	if err := os.WriteFile(path, conflist, 0o644); err != nil {
		h.t.Fatalf("podmantest: %v", err)
	}
	return path
}

// InstallPlugins copies the given plugin binaries into PluginDir under
// their base names.
func (h *Harness) InstallPlugins(paths ...string) {
	h.t.Helper()
	for _, p := range paths {
		if err := copyFile(p, filepath.Join(h.PluginDir, filepath.Base(p)), 0o755); err != nil {
			h.t.Fatalf("podmantest: install plugin: %v", err)
		}
	}
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// capNofile sets default_ulimits when this process's hard RLIMIT_NOFILE
// or RLIMIT_NPROC is below what podman asks runc for (1048576 and
// 4194304): without CAP_SYS_RESOURCE (as in some CI sandboxes) runc then
// fails with "error setting rlimit type 7 (or 6): operation not
// permitted". podman lowers its own (and conmon's) nproc to 32768 when it
// cannot raise it, so nproc is capped there.
func capNofile(conf string) string {
	if regexp.MustCompile(`(?m)^\s*default_ulimits\s*=`).MatchString(conf) {
		return conf
	}
	var limits []string
	for _, r := range []struct {
		name       string
		res        int
		podman, at uint64
	}{{"nofile", syscall.RLIMIT_NOFILE, 1 << 20, 1 << 20}, {"nproc", 6 /* RLIMIT_NPROC */, 1 << 22, 32768}} {
		var lim syscall.Rlimit
		if err := syscall.Getrlimit(r.res, &lim); err == nil && lim.Max < r.podman {
			v := min(lim.Max, r.at)
			limits = append(limits, fmt.Sprintf("%q", fmt.Sprintf("%s=%d:%d", r.name, v, v)))
		}
	}
	if len(limits) == 0 {
		return conf
	}
	line := "default_ulimits = [" + strings.Join(limits, ", ") + "]"
	if strings.Contains(conf, "[containers]") {
		return strings.Replace(conf, "[containers]", "[containers]\n"+line, 1)
	}
	return "[containers]\n" + line + "\n" + conf
}
