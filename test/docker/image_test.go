package docker

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/medianet/medianet/internal/dockertest"
)

// TestInstallerImage builds the DaemonSet's installer image with
// scripts/image.sh and runs the install script of daemonset.yaml in it, as
// the init container would, against host directories the test makes: the
// binaries land in the CNI bin dir identical to bin/, and the conflist
// from the ConfigMap lands in the CNI config dir when asked for.
func TestInstallerImage(t *testing.T) {
	require(t)
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	const image = "medianet/medianet:installer-test"
	build := exec.Command(filepath.Join(root, "scripts", "image.sh"))
	build.Env = append(os.Environ(), "IMAGE="+image, "MEDIANET_BIN="+binDir)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("scripts/image.sh: %v\n%s", err, out)
	}
	t.Cleanup(func() { _, _ = dockertest.Docker("rmi", "-f", image) })

	manifest, err := os.ReadFile(filepath.Join(root, "deploy", "kubernetes", "daemonset.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	script := blockScalar(manifest, "- |")
	conflist := blockScalar(manifest, "medianet.conflist: |")
	if script == "" || conflist == "" {
		t.Fatalf("daemonset.yaml: install script (%d bytes) or conflist (%d bytes) not found", len(script), len(conflist))
	}
	host := t.TempDir()
	for _, d := range []string{"bin", "net.d", "config"} {
		if err := os.MkdirAll(filepath.Join(host, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(host, "config", "medianet.conflist"), []byte(conflist), 0o644); err != nil {
		t.Fatal(err)
	}
	docker(t, "run", "--rm", "-e", "INSTALL_CONFLIST=true",
		"-v", filepath.Join(host, "bin")+":/host/opt/cni/bin",
		"-v", filepath.Join(host, "net.d")+":/host/etc/cni/net.d",
		"-v", filepath.Join(host, "config")+":/config:ro",
		image, "/bin/sh", "-c", script)

	for _, b := range []string{"medianet", "medianet-ipam", "medianetctl"} {
		got, err := os.ReadFile(filepath.Join(host, "bin", b))
		if err != nil {
			t.Errorf("%s not installed: %v", b, err)
			continue
		}
		want, err := os.ReadFile(filepath.Join(binDir, b))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("installed %s differs from bin/%s", b, b)
		}
	}
	got, err := os.ReadFile(filepath.Join(host, "net.d", "00-medianet.conflist"))
	if err != nil || string(got) != conflist {
		t.Errorf("installed conflist: %v, %d bytes; want the ConfigMap's %d bytes", err, len(got), len(conflist))
	}
	if left, _ := filepath.Glob(filepath.Join(host, "bin", ".*.new")); len(left) != 0 {
		t.Errorf("install left temporary files: %v", left)
	}
}

// blockScalar returns the first YAML literal block scalar introduced by a
// line ending in key (e.g. "- |"), dedented; it ends at the first non-empty
// line indented no deeper than the key's line.
func blockScalar(yaml []byte, key string) string {
	var out strings.Builder
	in, keyIndent, blockIndent := false, 0, -1
	sc := bufio.NewScanner(bytes.NewReader(yaml))
	for sc.Scan() {
		line := sc.Text()
		indent := len(line) - len(strings.TrimLeft(line, " "))
		if !in {
			if strings.HasSuffix(strings.TrimSpace(line), key) {
				in, keyIndent = true, indent
			}
			continue
		}
		if strings.TrimSpace(line) != "" && indent <= keyIndent {
			break
		}
		if blockIndent < 0 && strings.TrimSpace(line) != "" {
			blockIndent = indent
		}
		if len(line) >= blockIndent && blockIndent >= 0 {
			line = line[blockIndent:]
		}
		out.WriteString(line + "\n")
	}
	return out.String()
}
