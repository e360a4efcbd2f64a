package kubetest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// BinaryEnv names a kube-apiserver binary to use instead of the one
// scripts/kube-apiserver.sh builds.
const BinaryEnv = "MEDIANET_KUBE_APISERVER"

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// Binary returns the kube-apiserver to run: $MEDIANET_KUBE_APISERVER when
// set, else the one scripts/kube-apiserver.sh keeps in its cache, which
// it builds first when it is missing (minutes, once per machine; make
// test builds it before the tests). The error says why there is none.
func Binary() (string, error) {
	binOnce.Do(func() { binPath, binErr = findBinary() })
	return binPath, binErr
}

func findBinary() (string, error) {
	if p := os.Getenv(BinaryEnv); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s=%s: %w", BinaryEnv, p, err)
		}
		return p, nil
	}
	script := filepath.Join(RepoRoot(), "scripts", "kube-apiserver.sh")
	var stderr bytes.Buffer
	cmd := exec.Command(script)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s: %w: %s", script, err, lastLines(stderr.String(), 20))
	}
	p := strings.TrimSpace(string(out))
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%s printed %q: %w", script, p, err)
	}
	return p, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// RepoRoot returns the repository's top directory: the nearest directory
// at or above the working directory with a go.mod (go test runs in the
// package's directory).
func RepoRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		return "."
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			return dir
		}
	}
}
