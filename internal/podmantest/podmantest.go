// Package podmantest runs real podman (4.x, CNI backend, runc) for
// end-to-end tests without touching the machine's podman or CNI setup:
// each Harness writes its own containers.conf, which podman reads instead
// of the machine's files through CONTAINERS_CONF (runtime runc,
// cgroup_manager cgroupfs, events_logger file, the CNI network backend,
// default_ulimits where this process's limits need it), with its own
// network config directory (network_config_dir, also passed as
// --network-config-dir) and its own CNI plugin directory listed first in
// cni_plugin_dirs. The plugin binaries of the test (medianet,
// medianet-ipam) go there with InstallPlugins; the reference plugins in
// /usr/lib/cni stay reachable after it. /etc/containers is only read by
// podman for what this file does not set (policy.json, registries).
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
	"strings"
	"syscall"
	"testing"
)

// BusyboxImage is the tag ImportBusybox gives the image.
const BusyboxImage = "localhost/medianet-busybox:test"

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
	if err := os.WriteFile(h.ConfFile, []byte(ContainersConf(h.ConfDir, h.PluginDir)), 0o644); err != nil {
		t.Fatalf("podmantest: %v", err)
	}
	return h
}

// ContainersConf returns the text of a private containers.conf for podman
// 4.x on machines like CI's (cgroup v1, maybe no systemd): runc (crun
// fails under cgroup v1), cgroupfs, events in a file, the CNI backend
// with networks in confDir and plugins searched in pluginDir first, and
// default_ulimits when this process's hard limits are below what podman
// asks runc for.
func ContainersConf(confDir, pluginDir string) string {
	var b strings.Builder
	if l := defaultUlimits(); l != "" {
		fmt.Fprintf(&b, "[containers]\n%s\n\n", l)
	}
	fmt.Fprintf(&b, `[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"

[network]
network_backend = "cni"
network_config_dir = %q
cni_plugin_dirs = [%q, "/usr/local/libexec/cni", "/usr/lib/cni", "/opt/cni/bin"]
`, confDir, pluginDir)
	return b.String()
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

// defaultUlimits returns the default_ulimits line needed when this
// process's hard RLIMIT_NOFILE or RLIMIT_NPROC is below what podman asks
// runc for (1048576 and 4194304), else "": without CAP_SYS_RESOURCE (as
// in some CI sandboxes) runc then fails with "error setting rlimit type 7
// (or 6): operation not permitted". podman lowers its own (and conmon's)
// nproc to 32768 when it cannot raise it, so nproc is capped there.
func defaultUlimits() string {
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
		return ""
	}
	return "default_ulimits = [" + strings.Join(limits, ", ") + "]"
}
