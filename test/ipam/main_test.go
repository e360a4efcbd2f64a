// Package ipam_test runs the real medianet-ipam and medianetctl binaries:
// every verb at every spec version, bad input, many processes against one
// store, processes killed mid-allocation, and exec benchmarks against the
// reference host-local plugin. No root is needed.
package ipam_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/medianet/medianet/internal/cnitest"
)

// bins holds the binaries under test: $MEDIANET_BIN, or built into a
// temporary directory by TestMain.
var bins string

func TestMain(m *testing.M) {
	os.Exit(cnitest.Main(m, &bins, "medianet-ipam", "medianetctl"))
}

func bin(name string) string { return filepath.Join(bins, name) }

// plugin execs a CNI plugin with the CNI environment and conf on stdin.
func plugin(path, command, cid, ifname string, conf []byte, extraEnv ...string) (cnitest.Call, error) {
	cmd := exec.Command(path)
	cmd.Env = append([]string{
		"CNI_COMMAND=" + command,
		"CNI_CONTAINERID=" + cid,
		"CNI_NETNS=/var/run/netns/medianet-ipam-test-none", // IPAM only: never entered
		"CNI_IFNAME=" + ifname,
		"CNI_PATH=" + filepath.Dir(path),
		"PATH=/usr/bin:/bin",
	}, extraEnv...)
	cmd.Stdin = bytes.NewReader(conf)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	c := cnitest.Call{Stdout: out.String(), Stderr: errb.String()}
	if cmd.ProcessState != nil {
		c.Exit = cmd.ProcessState.ExitCode()
	}
	if _, isExit := err.(*exec.ExitError); isExit {
		err = nil
	}
	return c, err
}

// ctl runs medianetctl.
func ctl(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(bin("medianetctl"), args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if _, isExit := err.(*exec.ExitError); err != nil && !isExit {
		t.Fatalf("medianetctl %v: %v", args, err)
	}
	return out.String() + errb.String(), cmd.ProcessState.ExitCode()
}

type listEntry struct {
	Network     string   `json:"network"`
	ContainerID string   `json:"containerID"`
	IfName      string   `json:"ifname"`
	IPs         []string `json:"ips"`
}

// list returns `medianetctl ipam list --json` for dir, and fails the test
// unless `ipam check` passes too.
func list(t *testing.T, dir, network string) []listEntry {
	t.Helper()
	args := []string{"--data-dir", dir, "ipam", "list", "--json"}
	if network != "" {
		args = append(args, "--network", network)
	}
	out, code := ctl(t, args...)
	var entries []listEntry
	if code != 0 || json.Unmarshal([]byte(out), &entries) != nil {
		t.Fatalf("medianetctl ipam list: exit %d: %s", code, out)
	}
	if out, code := ctl(t, "--data-dir", dir, "ipam", "check"); code != 0 {
		t.Fatalf("medianetctl ipam check: exit %d: %s", code, out)
	}
	return entries
}

// result is the part of an ADD result the tests read (any version).
type result struct {
	CNIVersion string `json:"cniVersion"`
	IPs        []struct {
		Version string `json:"version"`
		Address string `json:"address"`
		Gateway string `json:"gateway"`
	} `json:"ips"`
}

func parseResult(t *testing.T, c cnitest.Call) result {
	t.Helper()
	var r result
	if c.Exit != 0 || json.Unmarshal([]byte(c.Stdout), &r) != nil || len(r.IPs) == 0 {
		t.Fatalf("ADD: exit %d, stdout %q, stderr %q", c.Exit, c.Stdout, c.Stderr)
	}
	return r
}

func addrs(r result) string {
	s := make([]string, len(r.IPs))
	for i, ip := range r.IPs {
		s[i] = strings.SplitN(ip.Address, "/", 2)[0]
	}
	return strings.Join(s, ",")
}
