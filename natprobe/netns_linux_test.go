package natprobe

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestNetnsNetwork checks that sockets opened through NetnsNetwork live in
// the target namespace, not in the test's own.
func TestNetnsNetwork(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("ip (iproute2) not installed")
	}
	ns := fmt.Sprintf("npxu%d", os.Getpid()%100000)
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	exec.Command("ip", "-n", ns, "link", "set", "lo", "up").Run()
	n, err := NewNetnsNetwork("/var/run/netns/" + ns)
	if err != nil {
		t.Fatalf("NewNetnsNetwork: %v", err)
	}
	defer n.Close()
	c, err := n.ListenUDP(netip.MustParseAddrPort("127.0.0.1:0"))
	if err != nil {
		t.Fatalf("ListenUDP: %v", err)
	}
	defer c.Close()
	port := c.LocalAddr().(*net.UDPAddr).Port
	out, err := exec.Command("ip", "netns", "exec", ns, "ss", "-Hlun").CombinedOutput()
	if err != nil {
		t.Fatalf("ss in %s: %v: %s", ns, err, out)
	}
	if want := fmt.Sprintf("127.0.0.1:%d", port); !strings.Contains(string(out), want) {
		t.Errorf("got sockets in %s:\n%s\nwant %s", ns, out, want)
	}
	src, err := n.SourceFor(netip.MustParseAddrPort("127.0.0.1:9"))
	if err != nil || src != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("SourceFor: got %v, %v, want 127.0.0.1", src, err)
	}
	if _, err := NewNetnsNetwork("/nonexistent/netns"); err == nil {
		t.Errorf("NewNetnsNetwork on a missing path: got nil error")
	}
}
