package cni_test

import (
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/medianet/medianet/internal/cnitest"
	"github.com/medianet/medianet/internal/nstest"
	"github.com/vishvananda/netlink"
)

// addContainer runs ADD for a fresh container namespace and returns it
// with the result and the invocation (for CHECK/DEL).
func addContainer(t *testing.T, lan *nstest.LAN, cid string, conf []byte) (*nstest.NS, result, cnitest.Call, inv) {
	t.Helper()
	ctr := nstest.NewNS(t, "mncc")
	i := inv{host: lan.Host, verb: "ADD", cid: cid, netns: ctr.Path, conf: conf}
	c := i.mustRun(t)
	return ctr, parseResult(t, c), c, i
}

// TestTwoContainersReachEachOther puts two containers on one master and
// pings between them and a LAN peer, over IPv4 and IPv6.
func TestTwoContainersReachEachOther(t *testing.T) {
	nstest.SkipUnlessRoot(t)
	if err := nstest.HavePing(); err != nil {
		t.Skip(err)
	}
	fam := families[2] // dual stack
	lan := nstest.NewLAN(t, "mncr")
	peer := lan.AddPeer(t, fam.peer...)
	conf := netConf{version: "1.1.0", master: lan.Master, dataDir: t.TempDir(), subnets: fam.subnets,
		extra: map[string]any{"skipDAD": true}}.json()
	a, ra, _, _ := addContainer(t, lan, "reach-a", conf)
	b, rb, _, _ := addContainer(t, lan, "reach-b", conf)
	for i, pa := range ra.prefixes(t) {
		pb := rb.prefixes(t)[i]
		if pa.Addr() == pb.Addr() {
			t.Fatalf("both containers got %s", pa)
		}
		if err := a.Ping(pb.Addr(), 2); err != nil {
			t.Errorf("container a -> b %s: %v", pb.Addr(), err)
		}
		if err := b.Ping(pa.Addr(), 2); err != nil {
			t.Errorf("container b -> a %s: %v", pa.Addr(), err)
		}
		if err := peer.Ping(pa.Addr(), 2); err != nil {
			t.Errorf("LAN peer -> container a %s: %v", pa.Addr(), err)
		}
	}
}

// TestCheckDetectsDamage removes the link's address, its default route
// and the link itself in turn: CHECK must fail each time, naming it.
func TestCheckDetectsDamage(t *testing.T) {
	nstest.SkipUnlessRoot(t)
	lan := nstest.NewLAN(t, "mnck")
	conf := netConf{version: "1.1.0", master: lan.Master, dataDir: t.TempDir(), subnets: families[0].subnets}.json()
	damage := []struct {
		name, want string
		do         func(h *netlink.Handle, l netlink.Link, r result) error
	}{
		{"address", "address", func(h *netlink.Handle, l netlink.Link, r result) error {
			p := r.prefixes(t)[0]
			a, err := netlink.ParseAddr(p.String())
			if err != nil {
				return err
			}
			return h.AddrDel(l, a)
		}},
		{"route", "route", func(h *netlink.Handle, l netlink.Link, r result) error {
			rs, err := h.RouteList(l, netlink.FAMILY_V4)
			if err != nil {
				return err
			}
			for _, rt := range rs {
				if rt.Gw != nil {
					return h.RouteDel(&rt)
				}
			}
			return fmt.Errorf("no default route on %s", l.Attrs().Name)
		}},
		{"link", "not found", func(h *netlink.Handle, l netlink.Link, r result) error { return h.LinkDel(l) }},
	}
	for i, d := range damage {
		t.Run(d.name, func(t *testing.T) {
			ctr, r, addOut, i0 := addContainer(t, lan, fmt.Sprintf("check-%d", i), conf)
			chk := i0
			chk.verb, chk.conf = "CHECK", withPrev(t, conf, addOut.Stdout)
			chk.mustRun(t)
			h := ctr.Handle(t)
			l, err := h.LinkByName("eth0")
			must(t, err)
			must(t, d.do(h, l, r))
			c := chk.run(t)
			if c.Exit == 0 || !strings.Contains(c.Err().Msg, d.want) {
				t.Errorf("CHECK after removing the %s: %v, want an error naming %q", d.name, c, d.want)
			}
			del := i0
			del.verb = "DEL"
			del.mustRun(t)
		})
	}
}

// TestHostShim lets the host namespace ping its own container through the
// shim, and DEL removes the host route.
func TestHostShim(t *testing.T) {
	nstest.SkipUnlessRoot(t)
	if err := nstest.HavePing(); err != nil {
		t.Skip(err)
	}
	lan := nstest.NewLAN(t, "mnch")
	nstest.AddAddrs(t, lan.Host, lan.Master, netip.MustParsePrefix("10.91.0.250/24"), netip.MustParsePrefix("fd91::fa/64"))
	conf := netConf{version: "1.1.0", master: lan.Master, dataDir: t.TempDir(),
		subnets: []any{families[0].subnets[0], families[1].subnets[0]},
		extra:   map[string]any{"hostShim": true, "skipDAD": true, "hostShimAddresses": []string{"fd91::fb/128"}}}.json()
	_, r, addOut, i0 := addContainer(t, lan, "shim-a", conf)
	for _, p := range r.prefixes(t) {
		if err := lan.Host.Ping(p.Addr(), 3); err != nil {
			t.Errorf("host -> container %s through the shim: %v", p.Addr(), err)
		}
	}
	// GC keeping only shim-a removes shim-b's routes with its addresses.
	_, rb, _, _ := addContainer(t, lan, "shim-b", conf)
	gc := inv{host: lan.Host, verb: "GC", conf: setKey(t, conf, "cni.dev/valid-attachments",
		[]map[string]string{{"containerID": "shim-a", "ifname": "eth0"}})}
	gc.mustRun(t)
	for _, p := range rb.prefixes(t) {
		if shim := shimRoute(t, lan.Host, p.Addr()); shim != "" {
			t.Errorf("after GC released shim-b, %s is still routed through shim %s", p.Addr(), shim)
		}
	}
	for _, p := range r.prefixes(t) {
		if shimRoute(t, lan.Host, p.Addr()) == "" {
			t.Errorf("GC removed the shim route of shim-a's %s, which it kept", p.Addr())
		}
	}
	del := i0
	del.verb, del.conf = "DEL", withPrev(t, conf, addOut.Stdout)
	del.mustRun(t)
	for _, p := range r.prefixes(t) {
		if shim := shimRoute(t, lan.Host, p.Addr()); shim != "" {
			t.Errorf("after DEL, %s is still routed through shim %s", p.Addr(), shim)
		}
	}
}

// shimRoute returns the name of the shim link (mns...) that host routes
// addr through, or "" when it does not.
func shimRoute(t *testing.T, host *nstest.NS, addr netip.Addr) string {
	t.Helper()
	h := host.Handle(t)
	rs, err := h.RouteGet(addr.AsSlice())
	if err != nil || len(rs) == 0 {
		return ""
	}
	if l, err := h.LinkByIndex(rs[0].LinkIndex); err == nil && strings.HasPrefix(l.Attrs().Name, "mns") {
		return l.Attrs().Name
	}
	return ""
}

// TestMACAndRoutes checks the mac capability, configured routes, mtu and
// mode on the created link.
func TestMACAndRoutes(t *testing.T) {
	nstest.SkipUnlessRoot(t)
	lan := nstest.NewLAN(t, "mncm")
	const mac = "02:42:ac:11:00:99"
	conf := netConf{version: "1.1.0", master: lan.Master, dataDir: t.TempDir(), subnets: families[0].subnets,
		extra: map[string]any{
			"mtu": 1400, "mode": "private",
			"routes":        []map[string]string{{"dst": "10.200.0.0/16", "gw": "10.91.0.1"}, {"dst": "10.201.0.0/16"}},
			"runtimeConfig": map[string]any{"mac": mac},
		}}.json()
	ctr, r, addOut, i0 := addContainer(t, lan, "mac-a", conf)
	if len(r.Interfaces) != 1 || r.Interfaces[0].Mac != mac {
		t.Errorf("result interfaces = %+v, want mac %s", r.Interfaces, mac)
	}
	l, err := ctr.Handle(t).LinkByName("eth0")
	must(t, err)
	mv, ok := l.(*netlink.Macvlan)
	if !ok || l.Attrs().HardwareAddr.String() != mac || l.Attrs().MTU != 1400 || mv.Mode != netlink.MACVLAN_MODE_PRIVATE {
		t.Errorf("link = %s mac %s mtu %d, want macvlan private mac %s mtu 1400", l.Type(), l.Attrs().HardwareAddr, l.Attrs().MTU, mac)
	}
	want := map[string]string{"0.0.0.0/0": "10.91.0.254", "10.200.0.0/16": "10.91.0.1", "10.201.0.0/16": ""}
	for _, rt := range r.Routes {
		if gw, ok := want[rt.Dst]; ok && gw == rt.GW {
			delete(want, rt.Dst)
		}
	}
	if len(want) != 0 {
		t.Errorf("result routes %+v lack %v", r.Routes, want)
	}
	chk := i0
	chk.verb, chk.conf = "CHECK", withPrev(t, conf, addOut.Stdout)
	chk.mustRun(t)
}

// TestDelegatedIPAM runs Debian's host-local behind medianet by exec.
func TestDelegatedIPAM(t *testing.T) {
	nstest.SkipUnlessRoot(t)
	skipWithoutRef(t, "host-local")
	lan := nstest.NewLAN(t, "mncd")
	dir := t.TempDir()
	conf := []byte(fmt.Sprintf(`{"cniVersion":"1.0.0","name":"deleg","type":"medianet","master":%q,
		"ipam":{"type":"host-local","dataDir":%q,"ranges":[[{"subnet":"10.93.0.0/24","gateway":"10.93.0.1"}]],
		"routes":[{"dst":"0.0.0.0/0"}]}}`, lan.Master, dir))
	ctr, r, addOut, i0 := addContainer(t, lan, "deleg-a", conf)
	got, ok := linkAddrs(t, ctr, "eth0")
	if !ok || !containsAll(got, r.prefixes(t)) {
		t.Fatalf("eth0: %v, want %v", got, r.prefixes(t))
	}
	chk := i0
	chk.verb, chk.conf = "CHECK", withPrev(t, conf, addOut.Stdout)
	chk.mustRun(t)
	del := i0
	del.verb, del.conf = "DEL", chk.conf
	del.mustRun(t)
	if _, ok := linkAddrs(t, ctr, "eth0"); ok {
		t.Errorf("eth0 still there after DEL")
	}
	ips, _ := listDir(dir + "/deleg")
	if len(ips) != 0 {
		t.Errorf("host-local still holds %v after DEL", ips)
	}
}

// TestRequestedIPAndLog asks for a specific address with CNI_ARGS IP=,
// asks for it again for another container (error 7, nothing left behind),
// checks the log file, and runs DEL after the namespace is gone.
func TestRequestedIPAndLog(t *testing.T) {
	nstest.SkipUnlessRoot(t)
	lan := nstest.NewLAN(t, "mnci")
	dataDir, logFile := t.TempDir(), t.TempDir()+"/medianet.log"
	conf := netConf{version: "1.1.0", master: lan.Master, dataDir: dataDir, subnets: families[0].subnets,
		extra: map[string]any{"logFile": logFile}}.json()
	ctr := nstest.NewNS(t, "mncc")
	add := inv{host: lan.Host, verb: "ADD", cid: "ip-a", netns: ctr.Path, conf: conf, args: "IP=10.91.0.33;K8S_POD_NAME=a"}
	r := parseResult(t, add.mustRun(t))
	if got := r.prefixes(t)[0]; got != netip.MustParsePrefix("10.91.0.33/24") {
		t.Errorf("ADD with IP=10.91.0.33: got %s", got)
	}
	ctr2 := nstest.NewNS(t, "mncc")
	taken := add
	taken.cid, taken.netns = "ip-b", ctr2.Path
	if c := taken.run(t); c.Exit == 0 || c.Err().Code != 7 || !strings.Contains(c.Err().Msg, "10.91.0.33") {
		t.Errorf("ADD of a taken address: %v, want error 7 naming it", c)
	}
	if names := macvlans(t, ctr2); len(names) != 0 {
		t.Errorf("links left after the failed ADD: %v", names)
	}
	if as := allocations(t, dataDir, "media"); len(as) != 1 {
		t.Errorf("allocations = %+v, want only ip-a's", as)
	}
	log, err := os.ReadFile(logFile)
	if err != nil || !strings.Contains(string(log), "ADD container=ip-a") || !strings.Contains(string(log), "error 7") {
		t.Errorf("log file = %q, %v; want the ADD of ip-a and the error 7", log, err)
	}
	// The runtime removed the namespace before DEL: DEL still releases.
	gone := add
	gone.verb, gone.netns = "DEL", "/run/netns/mnc-no-such-ns"
	gone.mustRun(t)
	if as := allocations(t, dataDir, "media"); len(as) != 0 {
		t.Errorf("allocations after DEL with the namespace gone = %+v, want none", as)
	}
}

// TestVLAN creates the 802.1q parent <master>.<vlan> on ADD.
func TestVLAN(t *testing.T) {
	nstest.SkipUnlessRoot(t)
	if err := nstest.HaveVLAN(t); err != nil {
		t.Skipf("kernel cannot make 802.1q links here: %v", err)
	}
	lan := nstest.NewLAN(t, "mncv")
	conf := netConf{version: "1.1.0", master: lan.Master, dataDir: t.TempDir(), subnets: families[0].subnets,
		extra: map[string]any{"vlan": 100}}.json()
	_, _, _, i0 := addContainer(t, lan, "vlan-a", conf)
	if _, err := lan.Host.Handle(t).LinkByName(lan.Master + ".100"); err != nil {
		t.Errorf("vlan parent %s.100: %v", lan.Master, err)
	}
	del := i0
	del.verb = "DEL"
	del.mustRun(t)
}
