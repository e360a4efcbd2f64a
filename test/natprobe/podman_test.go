package natprobe_test

import (
	"bytes"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/medianet/medianet/internal/dockertest"
	"github.com/medianet/medianet/internal/natlab"
	"github.com/medianet/medianet/natprobe"
)

const podmanImage = "localhost/medianet/natprobe-busybox:test"

func podman(args ...string) (string, error) {
	out, err := exec.Command("podman", args...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// TestPodmanBridgeContainer probes a podman container on podman's default
// CNI bridge (masqueraded by the CNI bridge plugin) with --container.
func TestPodmanBridgeContainer(t *testing.T) {
	if _, err := exec.LookPath("podman"); err != nil {
		t.Skip("podman not installed")
	}
	if _, err := podman("image", "exists", podmanImage); err != nil {
		rootfs, err := dockertest.BusyboxRootfs()
		if err != nil {
			t.Skipf("busybox: %v", err)
		}
		cmd := exec.Command("podman", "import", "-", podmanImage)
		cmd.Stdin = bytes.NewReader(rootfs)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("podman import: %v: %s", err, out)
		}
	}
	h := natlab.NewHostServer(t)
	srv := h.IP1.String() + ":3478"
	startInNS(t, h.NS, []string{srv, h.IP2.String() + ":3479"},
		natprobeBin(), "serve", "--primary", srv, "--alternate", h.IP2.String()+":3479")
	id, err := podman(append(append([]string{"run", "-d", "--rm"}, ulimits()...), "--network", "podman", podmanImage, "sleep", "600")...)
	if err != nil {
		t.Fatalf("podman run: %v: %s", err, id)
	}
	t.Cleanup(func() { podman("rm", "-f", "-t", "0", id) })
	rep, code := runProbe(t, "probe", "--container", id, "--runtime", "podman", "--server", srv, "--json")
	want := want{natPresent: true, mapping: natprobe.EndpointIndependent, filtering: natprobe.AddressAndPortDependent,
		classic: natprobe.ClassicPortRestrictedCone, remaps: "true", verdict: natprobe.VerdictNeedsTURN, exit: 3}
	want.check(t, rep, code)
}

// ulimits caps nofile and nproc at this process's hard limits: podman asks
// runc for more, which fails without CAP_SYS_RESOURCE.
func ulimits() []string {
	var out []string
	for _, r := range []struct {
		name string
		res  int
		cap  uint64
	}{{"nofile", syscall.RLIMIT_NOFILE, 1 << 20}, {"nproc", 6 /* RLIMIT_NPROC */, 32768}} {
		var lim syscall.Rlimit
		if syscall.Getrlimit(r.res, &lim) == nil {
			v := min(lim.Max, r.cap)
			out = append(out, "--ulimit", fmt.Sprintf("%s=%d:%d", r.name, v, v))
		}
	}
	return out
}
