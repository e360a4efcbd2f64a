// Package natprobe_test runs the natprobe binary against real Linux NATs
// built in network namespaces (internal/natlab), against coturn
// (internal/coturntest), against real ICE sessions between pion/ice agents
// (internal/icetest), and against containers on Docker's and podman's
// default bridges.
package natprobe_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/medianet/medianet/internal/cnitest"
	"github.com/medianet/medianet/internal/coturntest"
	"github.com/medianet/medianet/internal/icetest"
	"github.com/medianet/medianet/internal/natlab"
	"github.com/medianet/medianet/natprobe"
)

// binDir holds natprobe and medianetd: $MEDIANET_BIN, or built by TestMain.
var binDir string

func TestMain(m *testing.M) {
	icetest.MaybeRunAgent()
	os.Exit(cnitest.Main(m, &binDir, "natprobe", "medianetd"))
}

// natprobeBin is the natprobe binary under test.
func natprobeBin() string { return filepath.Join(binDir, "natprobe") }

// startInNS starts a long-running command in namespace ns, stopped when t
// ends, and waits until ns has sockets on every address in ready.
func startInNS(t testing.TB, ns string, ready []string, args ...string) {
	t.Helper()
	natlab.Start(t, ns, ready, args...)
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
	t.Helper()
	s := coturntest.Start(t, l.Server, coturntest.Options{IPs: []netip.Addr{natlab.ServerIP1, natlab.ServerIP2}, STUNOnly: true})
	return s.Addr().String()
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
	var rep natprobe.Report
	code := runNatprobe(t, &rep, args...)
	return &rep, code
}

// runNatprobe runs the natprobe binary, fails t on exit 1 (a usage or
// runtime error), decodes its stdout as JSON into out (when out is not
// nil) and returns the exit code and stdout.
func runNatprobe(t testing.TB, out any, args ...string) int {
	t.Helper()
	code, stdout := runNatprobeText(t, args...)
	if out != nil {
		if err := json.Unmarshal([]byte(stdout), out); err != nil {
			t.Fatalf("natprobe %v: output is not a %T: %v\n%s", args, out, err, stdout)
		}
	}
	return code
}

// runNatprobeText is runNatprobe for human output.
func runNatprobeText(t testing.TB, args ...string) (int, string) {
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
	return code, stdout.String()
}

func bstr(b *bool) string {
	if b == nil {
		return "null"
	}
	return fmt.Sprint(*b)
}
