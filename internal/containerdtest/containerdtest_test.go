package containerdtest

import (
	"os"
	"strings"
	"testing"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestHarness starts a private containerd, runs a host-network pod (no
// CNI involved), restarts containerd under it, and checks that teardown
// leaves no containerd, shim or directory behind.
func TestHarness(t *testing.T) {
	SkipUnlessAvailable(t)
	var dir, socket string
	t.Run("pod", func(t *testing.T) {
		c := Start(t, Options{})
		dir, socket = c.Dir, c.Socket
		id, err := c.RunPod(Pod{Name: "hostnet", HostNetwork: true})
		if err != nil {
			t.Fatal(err)
		}
		if n := shims(socket); n == 0 {
			t.Errorf("no shim serves %s after RunPodSandbox", socket)
		}
		c.Kill()
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		st, err := c.Status(id)
		if err != nil || st.State != runtime.PodSandboxState_SANDBOX_READY {
			t.Errorf("after a containerd crash and start: %+v, %v; want the pod ready", st, err)
		}
	})
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("teardown left %s: %v", dir, err)
	}
	if n := shims(socket); n != 0 {
		t.Errorf("teardown left %d shims of %s", n, socket)
	}
}

// shims counts the shim processes serving socket.
func shims(socket string) int {
	n := 0
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && strings.Contains(string(b), "containerd-shim-runc-v2") && strings.Contains(string(b), socket) {
			n++
		}
	}
	return n
}
