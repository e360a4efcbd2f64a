// Package natprobe_test runs the natprobe binary against real Linux NATs
// built in network namespaces (natprobe/natlab), against coturn, and
// against a container on Docker's default bridge.
package natprobe_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/medianet/medianet/internal/cnitest"
	"github.com/medianet/medianet/natprobe"
	"github.com/medianet/medianet/natprobe/natlab"
)

// binDir holds natprobe and medianetd: $MEDIANET_BIN, or built by TestMain.
var binDir string

func TestMain(m *testing.M) {
	os.Exit(cnitest.Main(m, &binDir, "natprobe", "medianetd"))
}

// natprobeBin is the natprobe binary under test.
func natprobeBin() string { return filepath.Join(binDir, "natprobe") }

// startInNS starts a long-running command in namespace ns, stopped when t
// ends, and waits until ns has UDP sockets on every address in ready.
func startInNS(t testing.TB, ns string, ready []string, args ...string) {
	t.Helper()
	cmd := natlab.Cmd(ns, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %v in %s: %v", args, ns, err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, _ := natlab.In(ns, "ss", "-Hlun")
		missing := ""
		for _, a := range ready {
			if !strings.Contains(out, a) {
				missing = a
			}
		}
		if missing == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v in %s: no socket on %s after 10s; stderr: %s", args, ns, missing, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// serveNatprobe runs natprobe serve on the lab's two server addresses.
func serveNatprobe(t testing.TB, l *natlab.Lab) string {
	startInNS(t, l.Server, []string{"198.18.0.10:3478", "198.18.0.11:3479", "198.18.0.10:3479", "198.18.0.11:3478"},
		natprobeBin(), "serve", "--primary", "198.18.0.10:3478", "--alternate", "198.18.0.11:3479", "--rate", "1000", "--burst", "1000")
	return "198.18.0.10:3478"
}

// serveCoturn runs coturn's turnserver as a STUN-only RFC 5780 server on
// the lab's two server addresses (alternate port = port + 1).
func serveCoturn(t testing.TB, l *natlab.Lab) string {
	if _, err := exec.LookPath("turnserver"); err != nil {
		t.Skip("coturn turnserver not installed")
	}
	dir := t.TempDir()
	startInNS(t, l.Server, []string{"198.18.0.10:3478", "198.18.0.11:3479"},
		"turnserver", "-n", "--no-auth", "--stun-only", "--no-cli", "--no-tls", "--no-dtls",
		"--listening-ip=198.18.0.10", "--listening-ip=198.18.0.11", "--listening-port=3478",
		"--pidfile="+filepath.Join(dir, "turnserver.pid"), "--log-file="+filepath.Join(dir, "turn.log"), "--simple-log")
	return "198.18.0.10:3478"
}

// probe runs natprobe probe --json from the lab's client namespace and
// returns the report and the exit code.
func probe(t testing.TB, l *natlab.Lab, extra ...string) (*natprobe.Report, int) {
	t.Helper()
	args := append([]string{"probe", "--netns", natlab.NetnsPath(l.Client), "--json"}, extra...)
	return runProbe(t, args...)
}

func runProbe(t testing.TB, args ...string) (*natprobe.Report, int) {
	t.Helper()
	cmd := exec.Command(natprobeBin(), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("natprobe %v: %v", args, err)
	}
	if code == 1 {
		t.Fatalf("natprobe %v: exit 1: %s", args, stderr.String())
	}
	var rep natprobe.Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("natprobe %v: output is not a report: %v\n%s\n%s", args, err, stdout.String(), stderr.String())
	}
	return &rep, code
}

func bstr(b *bool) string {
	if b == nil {
		return "null"
	}
	return fmt.Sprint(*b)
}
