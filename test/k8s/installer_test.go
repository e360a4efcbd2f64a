package k8s_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/medianet/medianet/internal/containerdtest"
	"github.com/medianet/medianet/internal/dockertest"
	"github.com/medianet/medianet/internal/nstest"
)

// daemonSet is what a node receives from deploy/kubernetes/daemonset.yaml:
// the install script of the init container and the ConfigMap's conflist.
func daemonSet(t *testing.T) (script, conflist string) {
	t.Helper()
	b, err := os.ReadFile("../../deploy/kubernetes/daemonset.yaml")
	must(t, err)
	for _, blk := range containerdtest.Blocks(b) {
		switch {
		case blk.Key == "-" && script == "":
			script = blk.Text
		case blk.Key == "medianet.conflist":
			conflist = blk.Text
		}
	}
	if script == "" || conflist == "" {
		t.Fatalf("daemonset.yaml: install script (%d bytes) or conflist (%d bytes) not found", len(script), len(conflist))
	}
	return script, conflist
}

// buildInstaller builds the installer image with scripts/image.sh (what
// `make image` runs) from the binaries in binDir and copies it into the
// node's containerd, as an image pulled by the node.
func buildInstaller(t *testing.T, c *containerdtest.Containerd, image, binDir string) {
	t.Helper()
	build := exec.Command("../../scripts/image.sh")
	build.Env = append(os.Environ(), "IMAGE="+image, "MEDIANET_BIN="+binDir)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("scripts/image.sh: %v\n%s", err, out)
	}
	t.Cleanup(func() { _, _ = dockertest.Docker("rmi", "-f", image) })
	must(t, c.ImportDockerImage(image))
}

// install runs the DaemonSet's init container on the node as kubelet
// would: a host-network pod, the image's /bin/sh -c with the manifest's
// script, INSTALL_CONFLIST=true and the three volumes. It fails the test
// unless the container exits 0.
func install(t *testing.T, c *containerdtest.Containerd, image, script, host string) {
	t.Helper()
	p := containerdtest.Pod{Name: "medianet-install", Namespace: "kube-system", UID: nstest.UniqueName("ds"), HostNetwork: true}
	sc := c.SandboxConfig(p)
	id, err := c.RunPod(p)
	must(t, err)
	code, log, err := c.RunContainer(id, sc, containerdtest.Container{
		Name: "install", Image: image, Command: []string{"/bin/sh", "-c"}, Args: []string{script},
		Env: map[string]string{"INSTALL_CONFLIST": "true"},
		Mounts: map[string]string{
			"/host/opt/cni/bin": filepath.Join(host, "opt/cni/bin"), "/host/etc/cni/net.d": filepath.Join(host, "etc/cni/net.d"),
			"/config": filepath.Join(host, "config"),
		},
		ReadOnly: map[string]bool{"/config": true},
	}, 2*time.Minute)
	must(t, err)
	if code != 0 {
		t.Fatalf("install container exited %d:\n%s", code, log)
	}
	must(t, c.StopRemove(id))
}

// TestInstallerOnContainerd: the DaemonSet's installer, run from the image
// `make image` builds, writes the binaries and the conflist into the
// node's directories, and containerd, pointed at them, starts pods on
// medianet. Run again with new binaries while a plugin process is still
// executing the old one (ETXTBSY for an in-place copy), it replaces them
// by rename, and the running pod's DEL works with the new binary.
func TestInstallerOnContainerd(t *testing.T) {
	nstest.SkipUnlessRoot(t)
	containerdtest.SkipUnlessAvailable(t)
	dockertest.Require(t)
	script, conflist := daemonSet(t)
	lan := nstest.NewRootLAN(t, "mni")
	host := t.TempDir()
	for _, d := range []string{"opt/cni/bin", "etc/cni/net.d", "config"} {
		must(t, os.MkdirAll(filepath.Join(host, d), 0o755))
	}
	// The ConfigMap as an operator edits it for this LAN: the master, and
	// a store of the test's own.
	dataDir := t.TempDir()
	edited := strings.Replace(conflist, `"master": "eth1"`, `"master": "`+lan.Master+`"`, 1)
	edited = strings.Replace(edited, `"dataDir": "/var/lib/medianet"`, `"dataDir": "`+dataDir+`"`, 1)
	if edited == conflist || !json.Valid([]byte(edited)) {
		t.Fatalf("could not edit master and dataDir in the ConfigMap's conflist:\n%s", conflist)
	}
	must(t, os.WriteFile(filepath.Join(host, "config/medianet.conflist"), []byte(edited), 0o644))
	t.Setenv("MEDIANET_NODE", "node-a") // the node's name, as on a node called node-a

	c := containerdtest.Start(t, containerdtest.Options{BinDir: filepath.Join(host, "opt/cni/bin"), ConfDir: filepath.Join(host, "etc/cni/net.d")})
	c.InstallPlugins("loopback", "tuning") // the node's own CNI plugins
	const v1, v2 = "medianet/medianet:k8s-test-v1", "medianet/medianet:k8s-test-v2"
	buildInstaller(t, c, v1, bins)
	install(t, c, v1, script, host)
	for _, b := range installed {
		sameFile(t, filepath.Join(host, "opt/cni/bin", b), bin(b))
	}
	sameFile(t, filepath.Join(host, "etc/cni/net.d/00-medianet.conflist"), filepath.Join(host, "config/medianet.conflist"))
	must(t, c.WaitNetwork(`"name": "media"`))
	n := &node{Containerd: c, dataDir: dataDir}
	p := n.runPod(t, "before-upgrade")
	if kind, addrs := p.eth0(t); kind != "macvlan" || len(addrs) != 1 || !strings.HasPrefix(addrs[0].String(), "192.168.100.") {
		t.Fatalf("pod eth0: %s %v, want a macvlan with an address of node-a's range", kind, addrs)
	}

	newBins := upgradedBins(t)
	buildInstaller(t, c, v2, newBins)
	installed := filepath.Join(host, "opt/cni/bin/medianet")
	busy := holdBusy(t, installed)
	install(t, c, v2, script, host)
	busy()
	sameFile(t, installed, filepath.Join(newBins, "medianet"))
	if left, _ := filepath.Glob(filepath.Join(host, "opt/cni/bin/.*.new")); len(left) != 0 {
		t.Errorf("install left temporary files: %v", left)
	}
	must(t, c.StopRemove(p.id))
	if left := ipamList(t, dataDir); len(left) != 0 {
		t.Errorf("after the pod's DEL by the upgraded plugin: allocations %v", left)
	}
	if q := n.runPod(t, "after-upgrade"); !strings.HasPrefix(q.ip.String(), "192.168.100.") {
		t.Errorf("pod after the upgrade: %s", q.ip)
	}
}

// upgradedBins is a copy of bins whose medianet differs from the installed
// one (a trailing comment after the ELF image, which the loader ignores),
// standing in for a new release.
func upgradedBins(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, b := range imaged {
		data, err := os.ReadFile(bin(b))
		must(t, err)
		if b == "medianet" {
			data = append(data, []byte("\n# medianet upgrade test\n")...)
		}
		must(t, os.WriteFile(filepath.Join(dir, b), data, 0o755))
	}
	return dir
}

// holdBusy starts the plugin at path as a runtime would for a DEL and
// keeps it waiting for its configuration on stdin, so the binary is being
// executed (writing it in place fails with ETXTBSY). The returned func
// lets it finish.
func holdBusy(t *testing.T, path string) func() {
	t.Helper()
	cmd := exec.Command(path)
	cmd.Env = []string{"CNI_COMMAND=DEL", "CNI_CONTAINERID=busy", "CNI_IFNAME=eth0", "CNI_PATH=" + filepath.Dir(path)}
	stdin, err := cmd.StdinPipe()
	must(t, err)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	must(t, cmd.Start())
	if f, err := os.OpenFile(path, os.O_WRONLY, 0); !errors.Is(err, syscall.ETXTBSY) {
		if f != nil {
			f.Close()
		}
		t.Fatalf("opening the running %s for writing: %v, want ETXTBSY", path, err)
	}
	return func() {
		stdin.Close()
		_ = cmd.Wait()
	}
}

// sameFile fails the test unless the files at a and b have equal content.
func sameFile(t *testing.T, a, b string) {
	t.Helper()
	x, err := os.ReadFile(a)
	must(t, err)
	y, err := os.ReadFile(b)
	must(t, err)
	if !bytes.Equal(x, y) {
		t.Errorf("%s (%d bytes) differs from %s (%d bytes)", a, len(x), b, len(y))
	}
}
