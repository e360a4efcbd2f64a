package containerdtest

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"sync"
	"time"
)

// PauseImage is the sandbox image every harness imports: the static pause
// program of ./pause as /pause, in a docker-archive built here.
const PauseImage = "localhost/medianet-pause:test"

var pauseArchive struct {
	once sync.Once
	path string
	err  error
}

// importPause builds the sandbox image archive (once per process) and
// imports it into this containerd's k8s.io namespace, unpacked for the
// CRI plugin's snapshotter.
func (c *Containerd) importPause() error {
	pauseArchive.once.Do(func() { pauseArchive.path, pauseArchive.err = buildPauseArchive() })
	if pauseArchive.err != nil {
		return pauseArchive.err
	}
	return c.importArchive(pauseArchive.path)
}

// importArchive runs ctr images import of a docker-archive or OCI tarball.
func (c *Containerd) importArchive(path string) error {
	out, err := exec.Command("ctr", "--address", c.Socket, "--namespace", "k8s.io",
		"images", "import", "--snapshotter", "overlayfs", path).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ctr images import %s: %w: %s", path, err, out)
	}
	return nil
}

// ImportDockerImage copies image from the local dockerd (docker save)
// into this containerd, as one side-loads an image on a node without a
// registry.
func (c *Containerd) ImportDockerImage(image string) error {
	tarball := filepath.Join(c.Dir, "docker-image.tar")
	defer os.Remove(tarball)
	if out, err := exec.Command("docker", "save", "-o", tarball, image).CombinedOutput(); err != nil {
		return fmt.Errorf("docker save %s: %w: %s", image, err, out)
	}
	return c.importArchive(tarball)
}

// buildPauseArchive returns a docker-archive (manifest.json, config, one
// layer) tagged PauseImage holding ./pause compiled statically. It is
// kept in the temporary directory under a name derived from the program's
// source and the Go version, so runs share one file instead of leaving
// one each; it is written under a temporary name and renamed.
func buildPauseArchive() (string, error) {
	_, file, _, _ := goruntime.Caller(0)
	src := filepath.Join(filepath.Dir(file), "pause")
	code, err := os.ReadFile(filepath.Join(src, "main.go"))
	if err != nil {
		return "", err
	}
	key := sha256.Sum256(append(code, goruntime.Version()...))
	path := filepath.Join(os.TempDir(), "medianet-pause-"+hex.EncodeToString(key[:6])+".tar")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	dir, err := os.MkdirTemp("", "mnpause")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "pause")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build pause: %w: %s", err, out)
	}
	archive, err := pauseArchiveOf(bin)
	if err != nil {
		return "", err
	}
	tmp := filepath.Join(dir, "pause-image.tar")
	if err := os.WriteFile(tmp, archive, 0o644); err != nil {
		return "", err
	}
	return path, os.Rename(tmp, path)
}

// pauseArchiveOf builds the docker-archive of the pause program at bin.
func pauseArchiveOf(bin string) ([]byte, error) {
	prog, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	layer, err := tarOf(map[string][]byte{"pause": prog})
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(layer)
	config, _ := json.Marshal(map[string]any{
		"architecture": goruntime.GOARCH, "os": "linux",
		"config": map[string]any{"Entrypoint": []string{"/pause"}},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{"sha256:" + hex.EncodeToString(sum[:])}},
	})
	manifest, _ := json.Marshal([]map[string]any{{"Config": "config.json", "RepoTags": []string{PauseImage}, "Layers": []string{"layer.tar"}}})
	return tarOf(map[string][]byte{"manifest.json": manifest, "config.json": config, "layer.tar": layer})
}

// tarOf returns a tar of regular files (mode 0755 for names without a
// dot, 0644 otherwise).
func tarOf(files map[string][]byte) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	now := time.Now()
	for name, data := range files {
		mode := int64(0o644)
		if !strings.Contains(name, ".") {
			mode = 0o755
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: now}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
