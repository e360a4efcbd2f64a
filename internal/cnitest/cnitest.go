// Package cnitest holds what the end-to-end tests of the CNI plugins
// share: finding or building medianet's binaries; running a plugin as a
// runtime does, in a node's network namespace, and killing it midway
// (exec.go); and filling a medianet store or a host-local directory with
// n allocations, for benchmarks that compare the two at the same
// occupancy.
package cnitest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/medianet/medianet/ipam"
	"github.com/medianet/medianet/ipam/boltstore"
)

// BinDir returns $MEDIANET_BIN when set (make test sets it to bin/), else
// builds the named commands of cmd/ into a new temporary directory as
// `make build` does (static, so start-up and memory match what ships);
// cleanup removes that directory.
func BinDir(names ...string) (dir string, cleanup func(), err error) {
	if d := os.Getenv("MEDIANET_BIN"); d != "" {
		return d, func() {}, nil
	}
	dir, err = os.MkdirTemp("", "medianet-bin-")
	if err != nil {
		return "", nil, err
	}
	cleanup = func() { os.RemoveAll(dir) }
	for _, c := range names {
		cmd := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(dir, c), "github.com/medianet/medianet/cmd/"+c)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			cleanup()
			return "", nil, fmt.Errorf("go build %s: %w\n%s", c, err, out)
		}
	}
	return dir, cleanup, nil
}

// Main is a TestMain body: it sets *dir with BinDir(names...), runs the
// tests and returns the exit code for os.Exit.
func Main(m *testing.M, dir *string, names ...string) int {
	d, cleanup, err := BinDir(names...)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer cleanup()
	*dir = d
	return m.Run()
}

// FillSubnet is the subnet FillMedianet and FillHostLocal fill.
var FillSubnet = netip.MustParsePrefix("10.80.0.0/16")

// FillMedianet allocates n addresses of FillSubnet on network "bench" in
// the store in dir, as n plugin ADDs would.
func FillMedianet(tb testing.TB, dir string, n int) {
	tb.Helper()
	st, err := boltstore.Open(context.Background(), dir, boltstore.Options{NoSync: true})
	if err != nil {
		tb.Fatal(err)
	}
	defer st.Close()
	cfg := ipam.Config{Network: "bench", Node: "bench-node", Subnets: []ipam.Subnet{{Prefix: FillSubnet}}}
	a, err := ipam.NewAllocator(cfg, st, nil)
	if err != nil {
		tb.Fatal(err)
	}
	for i := range n {
		if _, err := a.Allocate(context.Background(), ipam.Request{ContainerID: fmt.Sprintf("fill-%d", i), IfName: "eth0"}); err != nil {
			tb.Fatal(err)
		}
	}
}

// FillHostLocal writes n reservations of FillSubnet in host-local's
// on-disk format (one file per address holding "containerID\r\nifname",
// plus the round-robin marker), which is what n host-local ADDs leave.
func FillHostLocal(tb testing.TB, dir string, n int) {
	tb.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		tb.Fatal(err)
	}
	ip := FillSubnet.Addr().Next()
	for i := range n {
		ip = ip.Next()
		if err := os.WriteFile(filepath.Join(dir, ip.String()), fmt.Appendf(nil, "fill-%d\r\neth0", i), 0o600); err != nil {
			tb.Fatal(err)
		}
	}
	if n > 0 {
		if err := os.WriteFile(filepath.Join(dir, "last_reserved_ip.0"), []byte(ip.String()), 0o600); err != nil {
			tb.Fatal(err)
		}
	}
}

// Call is the outcome of one plugin execution.
type Call struct {
	Stdout, Stderr string
	Exit           int
}

// CNIError is a CNI error object as a plugin prints it on stdout.
type CNIError struct {
	Code uint   `json:"code"`
	Msg  string `json:"msg"`
}

// Err decodes the CNI error on c's stdout (zero when there is none).
func (c Call) Err() CNIError {
	var e CNIError
	_ = json.Unmarshal([]byte(c.Stdout), &e)
	return e
}

func (c Call) String() string {
	return fmt.Sprintf("exit %d, stdout %q, stderr %q", c.Exit, c.Stdout, c.Stderr)
}
