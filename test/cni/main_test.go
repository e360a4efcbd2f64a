// Package cni_test drives the real medianet CNI plugin binary (and
// medianet-ipam, the reference plugins, podman and libcni around it) in
// network namespaces the tests create, on veth masters the tests create,
// never on a pre-existing interface. Tests need root and skip without it.
package cni_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/medianet/medianet/internal/cnitest"

	"github.com/medianet/medianet/internal/nstest"
	"github.com/medianet/medianet/ipam"
	"github.com/medianet/medianet/ipam/boltstore"
	"github.com/vishvananda/netlink"
)

// bins holds the binaries under test: $MEDIANET_BIN, or built into a
// temporary directory by TestMain.
var bins string

func TestMain(m *testing.M) {
	os.Exit(cnitest.Main(m, &bins, "medianet", "medianet-ipam", "medianetctl", "medianetd"))
}

func bin(name string) string { return filepath.Join(bins, name) }

// refPlugins is where Debian's containernetworking-plugins live.
const refPlugins = "/usr/lib/cni"

// inv is one plugin invocation as a runtime makes it.
type inv struct {
	plugin  string // path; default bin("medianet")
	host    *nstest.NS
	verb    string
	cid     string
	netns   string
	ifname  string
	args    string // CNI_ARGS
	conf    []byte
	extraEv []string
}

// cmd builds the exec.Cmd of i: the plugin runs inside i.host (through
// nsenter) unless that is the root namespace.
func (i inv) cmd() *exec.Cmd {
	plugin := i.plugin
	if plugin == "" {
		plugin = bin("medianet")
	}
	var cmd *exec.Cmd
	if i.host == nil || i.host.IsRoot() {
		cmd = exec.Command(plugin)
	} else {
		cmd = exec.Command("nsenter", "--net="+i.host.Path, plugin)
	}
	ifname := i.ifname
	if ifname == "" {
		ifname = "eth0"
	}
	cmd.Env = append([]string{
		"CNI_COMMAND=" + i.verb,
		"CNI_CONTAINERID=" + i.cid,
		"CNI_NETNS=" + i.netns,
		"CNI_IFNAME=" + ifname,
		"CNI_ARGS=" + i.args,
		"CNI_PATH=" + bins + ":" + refPlugins,
		"PATH=/usr/sbin:/usr/bin:/sbin:/bin",
	}, i.extraEv...)
	cmd.Stdin = bytes.NewReader(i.conf)
	return cmd
}

// run executes i and returns its outcome; only a failure to start is fatal.
func (i inv) run(t testing.TB) cnitest.Call {
	t.Helper()
	cmd := i.cmd()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if _, isExit := err.(*exec.ExitError); err != nil && !isExit {
		t.Fatalf("run %s %s: %v", i.plugin, i.verb, err)
	}
	return cnitest.Call{Stdout: out.String(), Stderr: errb.String(), Exit: cmd.ProcessState.ExitCode()}
}

// mustRun is run that fails the test unless the plugin exits 0.
func (i inv) mustRun(t testing.TB) cnitest.Call {
	t.Helper()
	c := i.run(t)
	if c.Exit != 0 {
		t.Fatalf("%s %s: %v", i.verb, i.cid, c)
	}
	return c
}

// netConf builds a medianet network configuration.
type netConf struct {
	version string
	name    string
	master  string
	dataDir string
	subnets []any // a string or {"subnet","gateway"} per family
	extra   map[string]any
	ipam    map[string]any // extra ipam keys
}

func (n netConf) json() []byte {
	ipamObj := map[string]any{"type": "medianet-ipam", "node": "node-a", "dataDir": n.dataDir}
	if len(n.subnets) > 0 {
		ipamObj["subnets"] = n.subnets
	}
	for k, v := range n.ipam {
		ipamObj[k] = v
	}
	name := n.name
	if name == "" {
		name = "media"
	}
	m := map[string]any{"cniVersion": n.version, "name": name, "type": "medianet", "master": n.master, "ipam": ipamObj}
	for k, v := range n.extra {
		m[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

// withPrev returns conf with "prevResult" set to the ADD output.
func withPrev(t testing.TB, conf []byte, addOut string) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(conf, &m); err != nil {
		t.Fatal(err)
	}
	var prev map[string]any
	if err := json.Unmarshal([]byte(addOut), &prev); err != nil {
		t.Fatalf("ADD result %q: %v", addOut, err)
	}
	m["prevResult"] = prev
	b, _ := json.Marshal(m)
	return b
}

// setKey returns conf with key set to v.
func setKey(t testing.TB, conf []byte, key string, v any) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(conf, &m); err != nil {
		t.Fatal(err)
	}
	m[key] = v
	b, _ := json.Marshal(m)
	return b
}

// result is the part of an ADD result the tests read (any version).
type result struct {
	CNIVersion string `json:"cniVersion"`
	Interfaces []struct {
		Name    string `json:"name"`
		Mac     string `json:"mac"`
		Sandbox string `json:"sandbox"`
	} `json:"interfaces"`
	IPs []struct {
		Address string `json:"address"`
		Gateway string `json:"gateway"`
	} `json:"ips"`
	Routes []struct {
		Dst string `json:"dst"`
		GW  string `json:"gw"`
	} `json:"routes"`
}

func parseResult(t testing.TB, c cnitest.Call) result {
	t.Helper()
	var r result
	if c.Exit != 0 || json.Unmarshal([]byte(c.Stdout), &r) != nil || len(r.IPs) == 0 {
		t.Fatalf("ADD: %v", c)
	}
	return r
}

func (r result) prefixes(t testing.TB) []netip.Prefix {
	t.Helper()
	var ps []netip.Prefix
	for _, ip := range r.IPs {
		p, err := netip.ParsePrefix(ip.Address)
		if err != nil {
			t.Fatalf("result address %q: %v", ip.Address, err)
		}
		ps = append(ps, p)
	}
	return ps
}

// allocations lists the network's allocations in dataDir (nil when the
// store does not exist) and fails the test unless ipam.Check passes.
func allocations(t testing.TB, dataDir, network string) []ipam.Allocation {
	t.Helper()
	if _, err := os.Stat(filepath.Join(dataDir, boltstore.FileName)); os.IsNotExist(err) {
		return nil
	}
	st, err := boltstore.Open(context.Background(), dataDir, boltstore.Options{})
	if err != nil {
		t.Fatalf("open store %s: %v", dataDir, err)
	}
	defer st.Close()
	if _, err := ipam.Check(context.Background(), st); err != nil {
		t.Fatalf("ipam.Check %s: %v", dataDir, err)
	}
	as, err := ipam.List(context.Background(), st, network)
	if err != nil {
		t.Fatalf("ipam.List %s: %v", dataDir, err)
	}
	return as
}

// linkAddrs returns the global addresses of ifname in n, or ok false when
// the link does not exist.
func linkAddrs(t testing.TB, n *nstest.NS, ifname string) (addrs []netip.Prefix, ok bool) {
	t.Helper()
	h, err := n.NewHandle()
	if err != nil {
		t.Fatalf("handle %s: %v", n, err)
	}
	defer h.Close()
	l, err := h.LinkByName(ifname)
	if err != nil {
		return nil, false
	}
	as, err := h.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatalf("addr list %s in %s: %v", ifname, n, err)
	}
	for _, a := range as {
		if a.Scope != int(netlink.SCOPE_UNIVERSE) {
			continue
		}
		ip, _ := netip.AddrFromSlice(a.IP)
		bits, _ := a.Mask.Size()
		addrs = append(addrs, netip.PrefixFrom(ip.Unmap(), bits))
	}
	return addrs, true
}

// macvlans lists the names of macvlan links in n.
func macvlans(t testing.TB, n *nstest.NS) []string {
	t.Helper()
	h, err := n.NewHandle()
	if err != nil {
		t.Fatalf("handle %s: %v", n, err)
	}
	defer h.Close()
	ls, err := h.LinkList()
	if err != nil {
		t.Fatalf("link list %s: %v", n, err)
	}
	var names []string
	for _, l := range ls {
		if l.Type() == "macvlan" {
			names = append(names, l.Attrs().Name)
		}
	}
	return names
}

func containsAll(got []netip.Prefix, want []netip.Prefix) bool {
	for _, w := range want {
		found := false
		for _, g := range got {
			if g == w {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// skipWithoutRef skips t unless Debian's reference plugin name is installed.
func skipWithoutRef(t testing.TB, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := os.Stat(filepath.Join(refPlugins, n)); err != nil {
			t.Skipf("reference CNI plugin %s missing (Debian containernetworking-plugins): %v", n, err)
		}
	}
}

// listDir returns host-local's reservations in dir (one file per address).
func listDir(dir string) ([]string, error) {
	es, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var ips []string
	for _, e := range es {
		if _, err := netip.ParseAddr(e.Name()); err == nil {
			ips = append(ips, e.Name())
		}
	}
	return ips, nil
}
