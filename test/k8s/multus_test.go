package k8s_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/medianet/medianet/internal/containerdtest"
	"github.com/medianet/medianet/internal/etcdtest"
	"github.com/medianet/medianet/internal/nstest"
)

// nad is the network configuration of a NetworkAttachmentDefinition (its
// spec.config) as users find it in this repository.
type nad struct {
	source string // file it comes from
	config map[string]any
}

// nads returns every NetworkAttachmentDefinition of deploy/kubernetes and
// every whole network configuration shown in docs/ (what a user pastes
// into a NAD's spec.config).
func nads(t *testing.T) []nad {
	t.Helper()
	var out []nad
	add := func(source, raw string) {
		var m map[string]any
		if err := json.Unmarshal([]byte(raw), &m); err != nil {
			t.Fatalf("%s: config is not JSON: %v\n%s", source, err, raw)
		}
		if usesDHCP(m) {
			// Leases need a DHCP server on the LAN, which this node's
			// LAN has not: DHCP mode runs against kea and dnsmasq in
			// test/cni (dhcp_test.go) and dhcp/.
			return
		}
		out = append(out, nad{source: source, config: m})
	}
	yamls, _ := filepath.Glob("../../deploy/kubernetes/*.yaml")
	for _, f := range yamls {
		b, err := os.ReadFile(f)
		must(t, err)
		if !strings.Contains(string(b), "kind: NetworkAttachmentDefinition") {
			continue
		}
		for _, blk := range containerdtest.Blocks(b) {
			if blk.Key == "config" {
				add(filepath.Base(f), blk.Text)
			}
		}
	}
	docs, _ := filepath.Glob("../../docs/*.md")
	for _, f := range docs {
		b, err := os.ReadFile(f)
		must(t, err)
		for _, raw := range containerdtest.MarkdownJSON(b) {
			var head struct {
				Name    string `json:"name"`
				Type    string `json:"type"`
				Plugins []any  `json:"plugins"`
			}
			if json.Unmarshal([]byte(raw), &head) == nil && head.Name != "" && (head.Type != "" || head.Plugins != nil) {
				add(filepath.Base(f), raw)
			}
		}
	}
	return out
}

// usesDHCP reports whether a configuration's medianet-ipam is in DHCP
// mode (ipam.dhcp).
func usesDHCP(conf map[string]any) bool {
	for _, p := range plugins(conf) {
		if ip, ok := p["ipam"].(map[string]any); ok {
			if _, dhcp := ip["dhcp"]; dhcp {
				return true
			}
		}
	}
	return false
}

// plugins returns the plugin objects of a configuration (list or single).
func plugins(conf map[string]any) []map[string]any {
	list, ok := conf["plugins"].([]any)
	if !ok {
		return []map[string]any{conf}
	}
	var out []map[string]any
	for _, p := range list {
		if m, ok := p.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

// attachment is what the test learns of a NAD's medianet-ipam plugin.
type attachment struct {
	subnet  netip.Prefix
	gateway netip.Addr
	node    string       // the nodeRanges entry this node takes
	nodeNet netip.Prefix // its first range (the subnet without nodeRanges)
	caps    map[string]bool
	sticky  bool // ipam.sticky: a deleted pod's address is held for it
}

// prepare adapts a NAD for this test, as little as running it here
// needs: the store goes to a scratch dataDir and etcd endpoints to the
// test's etcd (reached through etcdURL); everything else is as written.
func prepare(t *testing.T, n nad, etcdURL func() string) attachment {
	t.Helper()
	var a attachment
	for _, p := range plugins(n.config) {
		ip, ok := p["ipam"].(map[string]any)
		if !ok || ip["type"] != "medianet-ipam" {
			continue
		}
		ip["dataDir"] = t.TempDir()
		_, a.sticky = ip["sticky"]
		if e, ok := ip["etcd"].(map[string]any); ok {
			e["endpoints"] = []string{etcdURL()}
		}
		a.subnet = netip.MustParsePrefix(ip["subnet"].(string))
		a.gateway, _ = netip.ParseAddr(ip["gateway"].(string))
		a.nodeNet, a.node = a.subnet, "node-a"
		if nr, ok := ip["nodeRanges"].(map[string]any); ok {
			nodes := make([]string, 0, len(nr))
			for k := range nr {
				nodes = append(nodes, k)
			}
			sort.Strings(nodes)
			a.node = nodes[0]
			a.nodeNet = netip.MustParsePrefix(nr[a.node].([]any)[0].(string))
		}
		a.caps = map[string]bool{}
		if caps, ok := p["capabilities"].(map[string]any); ok {
			for k, v := range caps {
				a.caps[k] = v == true
			}
		}
	}
	if !a.subnet.IsValid() {
		t.Fatalf("%s: no medianet-ipam plugin in %v", n.source, n.config)
	}
	return a
}

// TestMultusNADs runs every NetworkAttachmentDefinition users find here
// as net1 of a pod whose eth0 (the cluster network) holds the default
// route, as Multus runs it: the ips and mac capabilities where the NAD
// declares them, eth0's routes untouched and still used, DEL giving the
// routes back as they were and the address back to the store; then with
// the pod's `default-route` selecting net1, as Multus moves the default
// route after its delegates.
func TestMultusNADs(t *testing.T) {
	node := newMultusNode(t)
	var etcdURL string
	etcd := func() string {
		if etcdURL == "" {
			srv := etcdtest.Start(t, etcdtest.Options{})
			etcdURL = forward(t, node.ns, strings.TrimPrefix(srv.Endpoints()[0], "http://"))
		}
		return etcdURL
	}
	list := nads(t)
	if len(list) < 4 {
		t.Fatalf("found %d NetworkAttachmentDefinition configs, want the 2 of deploy/kubernetes and the 2 of docs", len(list))
	}
	for i, n := range list {
		t.Run(n.source+"/"+n.config["name"].(string), func(t *testing.T) {
			for _, p := range plugins(n.config) {
				if _, ok := p["vlan"]; ok {
					if err := nstest.HaveVLAN(t); err != nil {
						t.Skipf("%s asks for vlan %v: %v", n.source, p["vlan"], err)
					}
				}
			}
			a := prepare(t, n, etcd)
			t.Setenv("MEDIANET_NODE", a.node)
			raw, err := json.Marshal(n.config)
			must(t, err)
			conf := confList(t, string(raw))
			a.besideEth0(t, node.newPod(t, fmt.Sprintf("nad-%d", i)), conf, dataDirOf(n))
			a.defaultRoute(t, node.newPod(t, fmt.Sprintf("nad-dr-%d", i)), conf)
		})
	}
}

// nadMAC is the MAC a pod asks for where the NAD has the mac capability.
const nadMAC = "02:00:c0:a8:4d:0a"

// capArgs returns the capability arguments Multus passes for a network
// selection asking for an address and a MAC: only those the NAD declares
// reach the plugin. want is the requested address.
func (a attachment) capArgs() (caps map[string]any, want netip.Prefix) {
	caps = map[string]any{}
	want = netip.PrefixFrom(nth(a.nodeNet, 10), a.subnet.Bits())
	if a.caps["ips"] {
		caps["ips"] = []string{want.String()}
	}
	if a.caps["mac"] {
		caps["mac"] = nadMAC
	}
	return caps, want
}

// besideEth0 adds the NAD as net1 beside the cluster network's eth0: the
// address (the requested one with "ips") and MAC, no default route, eth0's
// routes kept and used; DEL restores the routes and frees the address.
func (a attachment) besideEth0(t *testing.T, p *kpod, conf *libcni.NetworkConfigList, dataDir string) {
	t.Helper()
	caps, want := a.capArgs()
	_, err := p.add(p.node.clusterNet(t), "eth0", nil)
	must(t, err)
	before := p.routes(t)
	res, err := p.add(conf, "net1", caps)
	mustf(t, err, "ADD net1")
	l, addrs := p.link(t, "net1")
	if len(addrs) != 1 || !a.nodeNet.Contains(addrs[0]) {
		t.Errorf("net1 addresses %v, want one in %s", addrs, a.nodeNet)
	}
	if a.caps["ips"] && !slices.Contains(addrs, want.Addr()) {
		t.Errorf("ips capability: net1 has %v, want %s", addrs, want.Addr())
	}
	if a.caps["mac"] && l.Attrs().HardwareAddr.String() != nadMAC {
		t.Errorf("mac capability: net1 has %s, want %s", l.Attrs().HardwareAddr, nadMAC)
	}
	if d := defaultsOf(res); len(d) != 0 {
		t.Errorf("result has default routes %v beside eth0's", d)
	}
	if dev, _ := p.egress(t, outside4); dev != "eth0" {
		t.Errorf("egress via %s after ADD of net1, want eth0 (the cluster network)", dev)
	}
	p.checkKept(t, before)
	must(t, p.del(conf, "net1", caps))
	p.checkRestored(t, before)
	left := ipamList(t, dataDir)
	if hold := "sticky:media/" + p.id; a.sticky {
		// The pod's address is held for it; an operator drops the hold.
		if len(left) != 1 || left[hold].HeldUntil.IsZero() {
			t.Errorf("after DEL on a sticky network: allocations %v, want only %s's hold", left, hold)
		}
		out, err := exec.Command(bin("medianetctl"), "--data-dir", dataDir, "ipam", "release", "--network", conf.Name, "--container", hold).CombinedOutput()
		mustf(t, err, "medianetctl ipam release %s: %s", hold, out)
		left = ipamList(t, dataDir)
		// Released by hand, a hold ends: the next ADD, DEL, GC or sync
		// frees it (through etcd on an etcd network).
		if h, ok := left[hold]; ok && h.HeldUntil.Before(time.Now()) {
			delete(left, hold)
		}
	}
	if len(left) != 0 {
		t.Errorf("after DEL: allocations %v", left)
	}
}

// defaultRoute runs the NAD as net1 of a pod whose selection says
// `default-route: [gateway]`, Multus moving the default route around the
// ADDs: the pod's default traffic then leaves by net1 via the gateway.
func (a attachment) defaultRoute(t *testing.T, p *kpod, conf *libcni.NetworkConfigList) {
	t.Helper()
	caps, _ := a.capArgs()
	_, err := p.add(p.node.clusterNet(t), "eth0", nil)
	must(t, err)
	p.deleteDefaults(t, "eth0")
	_, err = p.add(conf, "net1", caps)
	mustf(t, err, "ADD net1 with default-route")
	p.setDefault(t, "net1", a.gateway)
	if dev, gw := p.egress(t, outside4); dev != "net1" || gw != a.gateway {
		t.Errorf("with default-route: egress %s via %s, want net1 via %s", dev, gw, a.gateway)
	}
	must(t, p.del(conf, "net1", caps))
}

// nth returns the n-th address of p.
func nth(p netip.Prefix, n int) netip.Addr {
	a := p.Addr()
	for range n {
		a = a.Next()
	}
	return a
}

// dataDirOf returns the ipam.dataDir prepare set.
func dataDirOf(n nad) string {
	for _, p := range plugins(n.config) {
		if ip, ok := p["ipam"].(map[string]any); ok && ip["type"] == "medianet-ipam" {
			return ip["dataDir"].(string)
		}
	}
	return ""
}

// forward makes target (host:port in the test's namespace) reachable from
// inside ns at the returned http URL, on ns's loopback: a node reaching
// the cluster's etcd. The listening socket belongs to ns; each accepted
// connection is relayed from the test's own namespace.
func forward(t *testing.T, ns *nstest.NS, target string) string {
	t.Helper()
	var ln net.Listener
	must(t, ns.Do(func() (err error) {
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		return err
	}))
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go relay(c, target)
		}
	}()
	return "http://" + ln.Addr().String()
}

func relay(c net.Conn, target string) {
	defer c.Close()
	u, err := net.Dial("tcp", target)
	if err != nil {
		return
	}
	defer u.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(u, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, u); done <- struct{}{} }()
	<-done
}
