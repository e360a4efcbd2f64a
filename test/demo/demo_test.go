// Package demo_test runs `make demo` from a fresh clone of the repository,
// as a new user would, and checks what it shows and what it leaves behind.
package demo_test

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestMakeDemoFromClone clones the repository (its committed HEAD) into a
// temporary directory, runs `make demo` there, and checks that the demo
// prints addresses of both simulated nodes from their own, disjoint
// ranges and the two natprobe verdicts (NAT: needs-turn, medianet: ok),
// exits 0, and leaves no namespace, link, route, forwarding setting or
// firewall chain of its own behind.
func TestMakeDemoFromClone(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("make demo needs root (network namespaces, podman)")
	}
	for _, tool := range []string{"git", "make", "podman", "ip", "iptables"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("make demo needs %s: %v", tool, err)
		}
	}
	top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Skipf("not in a git checkout: %v", err)
	}
	clone := filepath.Join(t.TempDir(), "medianet")
	if out, err := exec.Command("git", "clone", "-q", strings.TrimSpace(string(top)), clone).CombinedOutput(); err != nil {
		t.Fatalf("git clone: %v\n%s", err, out)
	}
	before := hostState(t)
	cmd := exec.Command("make", "-C", clone, "demo")
	cmd.Env = append(os.Environ(), "MEDIANET_BIN=") // the clone builds its own bin/
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	t.Logf("make demo output:\n%s", out.String())
	if err != nil {
		t.Fatalf("make demo: %v", err)
	}
	checkNodeAddresses(t, out.String())
	checkVerdicts(t, out.String())
	checkNothingLeft(t)
	if after := hostState(t); after != before {
		t.Errorf("the root namespace's settings changed: before %+v, after %+v", before, after)
	}
}

// state is what the demo changes in the root namespace while it runs and
// must put back (IPv4 forwarding, the chains the CNI firewall plugin of its
// NAT network adds), and the machine's podman configuration, which neither
// it nor scripts/deps.sh may touch.
type state struct {
	ipForward      string
	cniChains      bool
	containersConf string
}

func hostState(t *testing.T) state {
	t.Helper()
	fwd, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	if err != nil {
		t.Fatal(err)
	}
	conf := "missing"
	if fi, err := os.Stat("/etc/containers/containers.conf"); err == nil {
		conf = fmt.Sprintf("%d bytes, modified %v", fi.Size(), fi.ModTime())
	}
	return state{ipForward: strings.TrimSpace(string(fwd)),
		cniChains:      exec.Command("iptables", "-w", "-n", "-L", "CNI-FORWARD").Run() == nil,
		containersConf: conf}
}

var nodeLine = regexp.MustCompile(`(?m)^\s+node-([ab])\s+\S+\s+(\S+)\s+\(node-[ab] range (\S+)\)`)

func checkNodeAddresses(t *testing.T, out string) {
	t.Helper()
	ranges := map[string]netip.Prefix{}
	count := map[string]int{}
	for _, m := range nodeLine.FindAllStringSubmatch(out, -1) {
		addr, err := netip.ParseAddr(m[2])
		if err != nil {
			t.Errorf("node-%s address %q: %v", m[1], m[2], err)
			continue
		}
		r := netip.MustParsePrefix(m[3])
		if !r.Contains(addr) {
			t.Errorf("node-%s got %s, outside its range %s", m[1], addr, r)
		}
		ranges[m[1]] = r
		count[m[1]]++
	}
	if count["a"] == 0 || count["b"] == 0 {
		t.Fatalf("demo printed addresses for nodes %v, want both node-a and node-b", count)
	}
	if ranges["a"].Overlaps(ranges["b"]) {
		t.Errorf("node ranges %s and %s overlap", ranges["a"], ranges["b"])
	}
}

var verdictLine = regexp.MustCompile(`(?m)^\s+(\S+)\s+natPresent=(\w+) .* verdict=(\S+) \(exit (\d+)\)`)

func checkVerdicts(t *testing.T, out string) {
	t.Helper()
	got := map[string]string{}
	for _, m := range verdictLine.FindAllStringSubmatch(out, -1) {
		got[m[1]] = "natPresent=" + m[2] + " verdict=" + m[3] + " exit=" + m[4]
	}
	want := map[string]string{
		"mnd-natted": "natPresent=true verdict=needs-turn exit=3",
		"mnd-a1":     "natPresent=false verdict=ok exit=0",
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("probe of %s: got %q, want %q", name, got[name], w)
		}
	}
}

func checkNothingLeft(t *testing.T) {
	t.Helper()
	ns, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatalf("ip netns list: %v", err)
	}
	links, err := exec.Command("ip", "-o", "link", "show").Output()
	if err != nil {
		t.Fatalf("ip link show: %v", err)
	}
	for _, l := range strings.Split(string(ns)+string(links), "\n") {
		if strings.Contains(l, "mnd-") {
			t.Errorf("demo left behind: %s", l)
		}
	}
	if _, err := os.Stat("/run/medianet-demo"); !os.IsNotExist(err) {
		t.Errorf("demo left /run/medianet-demo behind (stat: %v)", err)
	}
	routes, _ := exec.Command("ip", "route", "show", "203.0.113.0/24").Output()
	if len(bytes.TrimSpace(routes)) != 0 {
		t.Errorf("demo left a route behind: %s", routes)
	}
}
