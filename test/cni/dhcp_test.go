package cni_test

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/medianet/medianet/internal/cnitest"
	"github.com/medianet/medianet/internal/dhcptest"
	"github.com/medianet/medianet/internal/nstest"
)

// dhcpLab is one node (the LAN's host namespace) with its agent, and a
// DHCP server on the LAN.
type dhcpLab struct {
	lan     *nstest.LAN
	srv     *dhcptest.Server
	agent   *dhcptest.Agent
	dataDir string
}

func dhcpConfig(kind string, base int) dhcptest.Config {
	return dhcptest.TestConfig(kind, byte(base))
}

func newDHCPLab(t *testing.T, kind string, cfg dhcptest.Config) *dhcpLab {
	t.Helper()
	nstest.SkipUnlessRoot(t)
	dhcptest.Skip(t, kind)
	lan := nstest.NewLAN(t, "mncd")
	l := &dhcpLab{lan: lan, dataDir: t.TempDir()}
	l.srv = dhcptest.Start(t, kind, lan, cfg)
	l.agent = dhcptest.StartAgent(t, bins, l.dataDir)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("agent log:\n%s\nserver log:\n%s", l.agent.Log(), l.srv.Log())
		}
	})
	return l
}

// conf is the network's configuration with ipam.dhcp and extra ipam keys.
func (l *dhcpLab) conf(master string, dhcp map[string]any, extra map[string]any) []byte {
	ipamObj := map[string]any{"type": "medianet-ipam", "dataDir": l.dataDir, "dhcp": dhcp}
	for k, v := range extra {
		ipamObj[k] = v
	}
	b, _ := json.Marshal(map[string]any{"cniVersion": "1.1.0", "name": "lan", "type": "medianet", "master": master, "ipam": ipamObj})
	return b
}

func podArgs(ns, name string) string {
	return "IgnoreUnknown=1;K8S_POD_NAMESPACE=" + ns + ";K8S_POD_NAME=" + name
}

// ctlLeases runs medianetctl ipam list --json on dataDir.
func ctlLeases(t *testing.T, dataDir string) []map[string]any {
	t.Helper()
	out, err := exec.Command(bin("medianetctl"), "--data-dir", dataDir, "ipam", "list", "--json").Output()
	if err != nil {
		t.Fatalf("medianetctl ipam list: %v: %s", err, out)
	}
	var rows []map[string]any
	if err := json.Unmarshal(out, &rows); err != nil {
		t.Fatalf("medianetctl ipam list --json: %v: %s", err, out)
	}
	return rows
}

// TestDHCPVerbs: ADD leases an address from the LAN's server on the
// container's own MAC, with the pod's client identifier and name; the
// result carries the lease's gateway and a default route (the namespace
// had none); CHECK passes; medianetctl lists the lease with its expiry;
// DEL sends RELEASE (the server's database shows it) and removes the link;
// a second DEL succeeds.
func TestDHCPVerbs(t *testing.T) {
	for i, kind := range dhcptest.Kinds {
		t.Run(kind, func(t *testing.T) {
			cfg := dhcpConfig(kind, 71+i)
			l := newDHCPLab(t, kind, cfg)
			ctr := nstest.NewNS(t, "mncc")
			conf := l.conf(l.lan.Master, map[string]any{}, nil)
			base := inv{host: l.lan.Host, cid: "dhcp-verbs", netns: ctr.Path, conf: conf, args: podArgs("media", "janus-0")}
			add := base
			add.verb = "ADD"
			out := add.mustRun(t)
			r := parseResult(t, out)
			addr := r.prefixes(t)[0]
			if !cfg.Subnet.Contains(addr.Addr()) || addr.Bits() != 24 || r.IPs[0].Gateway != cfg.Gateway.String() {
				t.Fatalf("ADD result %+v: want an address of %s with gateway %s", r.IPs, cfg.Subnet, cfg.Gateway)
			}
			if got, ok := linkAddrs(t, ctr, "eth0"); !ok || !containsAll(got, []netip.Prefix{addr}) {
				t.Fatalf("eth0 addresses %v, want %s", got, addr)
			}
			if out, err := ctr.Exec("ip", "-4", "route", "show", "default"); err != nil || !strings.Contains(string(out), "via "+cfg.Gateway.String()) {
				t.Errorf("default route in the container: %q (%v), want via %s", out, err, cfg.Gateway)
			}
			sl, ok, err := l.srv.LeaseOf(addr.Addr())
			mac := ctr.MAC(t, "eth0").String()
			if err != nil || !ok || !sl.Active || !strings.EqualFold(sl.MAC, mac) || sl.Hostname != "janus-0" {
				t.Fatalf("server's lease of %s: %+v (present %v, %v); want active for MAC %s, hostname janus-0", addr, sl, ok, err, mac)
			}
			if !strings.Contains(strings.ReplaceAll(sl.ClientID, ":", ""), fmt.Sprintf("%x", "media/janus-0")) {
				t.Errorf("server's client id %q does not name the pod media/janus-0", sl.ClientID)
			}
			check := base
			check.verb, check.conf = "CHECK", withPrev(t, conf, out.Stdout)
			check.mustRun(t)

			rows := ctlLeases(t, l.dataDir)
			if len(rows) != 1 || rows[0]["containerID"] != "dhcp-verbs" || rows[0]["leaseExpires"] == nil {
				t.Fatalf("medianetctl ipam list --json = %v, want the lease with leaseExpires", rows)
			}
			if exp, err := time.Parse(time.RFC3339, fmt.Sprint(rows[0]["leaseExpires"])); err != nil || !exp.After(time.Now()) {
				t.Errorf("leaseExpires %v (%v): want an RFC 3339 time ahead", rows[0]["leaseExpires"], err)
			}
			text, err := exec.Command(bin("medianetctl"), "--data-dir", l.dataDir, "ipam", "list").CombinedOutput()
			if err != nil || !strings.Contains(string(text), "LEASE EXPIRES") || !strings.Contains(string(text), addr.Addr().String()) {
				t.Errorf("medianetctl ipam list: %v\n%s", err, text)
			}

			del := base
			del.verb = "DEL"
			del.mustRun(t)
			if err := l.srv.WaitLease(addr.Addr(), 5*time.Second, func(sl dhcptest.Lease, ok bool) bool { return !ok || !sl.Active }); err != nil {
				t.Errorf("RELEASE on DEL not in the server's database: %v", err)
			}
			if _, ok := linkAddrs(t, ctr, "eth0"); ok {
				t.Errorf("eth0 still in the container after DEL")
			}
			if rows := ctlLeases(t, l.dataDir); len(rows) != 0 {
				t.Errorf("leases after DEL: %v", rows)
			}
			del.mustRun(t)
		})
	}
}

// TestDHCPAgentKilled: the agent dies (SIGKILL) mid-lease and comes back:
// the lease is still held and renewed, the address unchanged.
func TestDHCPAgentKilled(t *testing.T) {
	cfg := dhcpConfig(dhcptest.Kea, 73)
	l := newDHCPLab(t, dhcptest.Kea, cfg)
	ctr := nstest.NewNS(t, "mncc")
	add := inv{host: l.lan.Host, verb: "ADD", cid: "dhcp-kill", netns: ctr.Path, conf: l.conf(l.lan.Master, map[string]any{}, nil)}
	addr := parseResult(t, add.mustRun(t)).prefixes(t)[0]
	l.agent.Stop(syscall.SIGKILL)
	before := ctlLeases(t, l.dataDir)
	if len(before) != 1 {
		t.Fatalf("leases with the agent dead: %v", before)
	}
	if err := l.agent.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		rows := ctlLeases(t, l.dataDir)
		if len(rows) == 1 && rows[0]["leaseExpires"] != before[0]["leaseExpires"] {
			if fmt.Sprint(rows[0]["ips"]) != fmt.Sprint([]any{addr.Addr().String()}) {
				t.Fatalf("after the agent's restart the lease is %v, want %s", rows[0]["ips"], addr)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("lease not renewed by the restarted agent: %v", rows)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got, ok := linkAddrs(t, ctr, "eth0"); !ok || !containsAll(got, []netip.Prefix{addr}) {
		t.Errorf("eth0 addresses %v, want %s", got, addr)
	}
}

// TestDHCPNoServer: with no server on the LAN, ADD fails within its
// timeout with code 11 and a message saying no server answered, and
// leaves no link and no lease.
func TestDHCPNoServer(t *testing.T) {
	nstest.SkipUnlessRoot(t)
	lan := nstest.NewLAN(t, "mncd")
	dataDir := t.TempDir()
	dhcptest.StartAgent(t, bins, dataDir)
	l := &dhcpLab{lan: lan, dataDir: dataDir}
	ctr := nstest.NewNS(t, "mncc")
	add := inv{host: lan.Host, verb: "ADD", cid: "dhcp-none", netns: ctr.Path, conf: l.conf(lan.Master, map[string]any{"timeout": "2s"}, nil)}
	c := add.run(t)
	if c.Exit == 0 || c.Err().Code != 11 || !strings.Contains(c.Err().Msg, "no server answered") {
		t.Fatalf("ADD without a server: %v; want code 11 saying no server answered", c)
	}
	if ls := macvlans(t, ctr); len(ls) != 0 {
		t.Errorf("links left in the container: %v", ls)
	}
	if rows := ctlLeases(t, dataDir); len(rows) != 0 {
		t.Errorf("leases left: %v", rows)
	}
}

// TestDHCPExpiredCheck: the server goes away; renewal and rebinding fail;
// at expiry the address leaves the container and CHECK says so. The
// server comes back: the agent regains the same address (INIT-REBOOT,
// same client identifier), puts it back on eth0 with the default route
// it had, and CHECK passes again.
func TestDHCPExpiredCheck(t *testing.T) {
	cfg := dhcpConfig(dhcptest.Kea, 74)
	cfg.Lease, cfg.T1, cfg.T2 = 4*time.Second, 1*time.Second, 3*time.Second
	l := newDHCPLab(t, dhcptest.Kea, cfg)
	ctr := nstest.NewNS(t, "mncc")
	conf := l.conf(l.lan.Master, map[string]any{}, nil)
	add := inv{host: l.lan.Host, verb: "ADD", cid: "dhcp-exp", netns: ctr.Path, conf: conf}
	out := add.mustRun(t)
	must(t, l.srv.Stop())
	deadline := time.Now().Add(15 * time.Second)
	for {
		if got, _ := linkAddrs(t, ctr, "eth0"); len(got) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the address stayed on eth0 after the lease's end")
		}
		time.Sleep(100 * time.Millisecond)
	}
	check := add
	check.verb, check.conf = "CHECK", withPrev(t, conf, out.Stdout)
	c := check.run(t)
	if c.Exit == 0 || !strings.Contains(c.Stdout+c.Stderr, "expired") && !strings.Contains(c.Stdout+c.Stderr, "ended") {
		t.Fatalf("CHECK after expiry: %v; want a failure saying the lease ended", c)
	}
	rows := ctlLeases(t, l.dataDir)
	if len(rows) != 1 || rows[0]["leaseState"] != "expired" {
		t.Errorf("medianetctl after expiry: %v, want the lease with state expired", rows)
	}

	addr := parseResult(t, out).prefixes(t)[0]
	must(t, l.srv.Start())
	back := time.Now()
	deadline = time.Now().Add(40 * time.Second)
	for {
		if got, _ := linkAddrs(t, ctr, "eth0"); containsAll(got, []netip.Prefix{addr}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not back on eth0 40s after the server came back", addr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("address back on eth0 %s after the server's start", time.Since(back).Round(100*time.Millisecond))
	if r, err := ctr.Exec("ip", "-4", "route", "show", "default"); err != nil || !strings.Contains(string(r), "via "+cfg.Gateway.String()) {
		t.Errorf("default route after the lease was regained: %q (%v), want via %s", r, err, cfg.Gateway)
	}
	check.mustRun(t)
	if rows := ctlLeases(t, l.dataDir); len(rows) != 1 || rows[0]["leaseState"] != "bound" {
		t.Errorf("medianetctl after the lease was regained: %v, want it bound", rows)
	}
}

// TestDHCPStickyOtherNode: a sticky pod deleted on node A (no RELEASE:
// the server keeps the lease for its client identifier) gets the same
// address on node B, whose agent never saw it.
func TestDHCPStickyOtherNode(t *testing.T) {
	for i, kind := range dhcptest.Kinds {
		t.Run(kind, func(t *testing.T) {
			l := newDHCPLab(t, kind, dhcpConfig(kind, 75+i))
			nodeB := l.lan.AddPeer(t)
			dirB := t.TempDir()
			dhcptest.StartAgent(t, bins, dirB)
			lb := &dhcpLab{lan: l.lan, dataDir: dirB}
			sticky := map[string]any{"sticky": "30m"}
			args := podArgs("media", "jvb-0")
			ctrA := nstest.NewNS(t, "mncc")
			a := inv{host: l.lan.Host, verb: "ADD", cid: "jvb-a", netns: ctrA.Path, args: args, conf: l.conf(l.lan.Master, map[string]any{}, sticky)}
			addrA := parseResult(t, a.mustRun(t)).prefixes(t)[0]
			// A second pod takes an address meanwhile, so the next free
			// one is not the old one by chance.
			other := inv{host: l.lan.Host, verb: "ADD", cid: "other", netns: nstest.NewNS(t, "mncc").Path, args: podArgs("media", "other"), conf: a.conf}
			other.mustRun(t)
			del := a
			del.verb = "DEL"
			del.mustRun(t)
			ctrB := nstest.NewNS(t, "mncc")
			b := inv{host: nodeB, verb: "ADD", cid: "jvb-b", netns: ctrB.Path, args: args, conf: lb.conf("lan0", map[string]any{}, sticky)}
			addrB := parseResult(t, b.mustRun(t)).prefixes(t)[0]
			if addrB != addrA {
				t.Errorf("sticky pod on node B got %s, want its address %s from node A", addrB, addrA)
			}
		})
	}
}

// TestDHCPConcurrentAdds: 20 ADDs at once on one node all get distinct
// leases; GC keeping none releases them all on the server.
func TestDHCPConcurrentAdds(t *testing.T) {
	const n = 20
	cfg := dhcpConfig(dhcptest.Kea, 77)
	cfg.Lease, cfg.T1, cfg.T2 = 120*time.Second, 60*time.Second, 100*time.Second
	l := newDHCPLab(t, dhcptest.Kea, cfg)
	conf := l.conf(l.lan.Master, map[string]any{"timeout": "30s"}, nil)
	ctrs := make([]*nstest.NS, n)
	for i := range ctrs {
		ctrs[i] = nstest.NewNS(t, "mncc")
	}
	calls := make([]cnitest.Call, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			calls[i] = inv{host: l.lan.Host, verb: "ADD", cid: fmt.Sprintf("c%02d", i), netns: ctrs[i].Path, conf: conf}.run(t)
		})
	}
	wg.Wait()
	seen := map[netip.Prefix]string{}
	for i, c := range calls {
		p := parseResult(t, c).prefixes(t)[0]
		if prev, dup := seen[p]; dup {
			t.Errorf("%s leased to c%02d and %s", p, i, prev)
		}
		seen[p] = fmt.Sprintf("c%02d", i)
	}
	gcConf := setKey(t, conf, "cni.dev/valid-attachments", []any{})
	inv{host: l.lan.Host, verb: "GC", conf: gcConf}.mustRun(t)
	for p := range seen {
		if err := l.srv.WaitLease(p.Addr(), 5*time.Second, func(sl dhcptest.Lease, ok bool) bool { return !ok || !sl.Active }); err != nil {
			t.Errorf("GC did not release %s: %v", p, err)
		}
	}
	if rows := ctlLeases(t, l.dataDir); len(rows) != 0 {
		t.Errorf("leases after GC: %d", len(rows))
	}
}

// TestDHCPBehindReferenceMacvlan: medianet-ipam in DHCP mode as the IPAM
// of the reference macvlan plugin: the lease is taken on the link the
// reference plugin made, which it configures from the result; its DEL
// (IPAM first, then the link) releases the lease on the server.
func TestDHCPBehindReferenceMacvlan(t *testing.T) {
	skipWithoutRef(t, "macvlan")
	cfg := dhcpConfig(dhcptest.Dnsmasq, 78)
	l := newDHCPLab(t, dhcptest.Dnsmasq, cfg)
	ctr := nstest.NewNS(t, "mncc")
	conf, _ := json.Marshal(map[string]any{"cniVersion": "1.0.0", "name": "lan", "type": "macvlan", "master": l.lan.Master,
		"ipam": map[string]any{"type": "medianet-ipam", "dataDir": l.dataDir, "dhcp": map[string]any{}}})
	base := inv{plugin: refPlugins + "/macvlan", host: l.lan.Host, cid: "ref-mv", netns: ctr.Path, conf: conf, args: podArgs("media", "coturn-0")}
	add := base
	add.verb = "ADD"
	addr := parseResult(t, add.mustRun(t)).prefixes(t)[0]
	if got, ok := linkAddrs(t, ctr, "eth0"); !ok || !containsAll(got, []netip.Prefix{addr}) {
		t.Fatalf("eth0 addresses %v, want %s", got, addr)
	}
	sl, ok, err := l.srv.LeaseOf(addr.Addr())
	if err != nil || !ok || !strings.EqualFold(sl.MAC, ctr.MAC(t, "eth0").String()) {
		t.Fatalf("server's lease of %s: %+v (present %v, %v), want the link's MAC", addr, sl, ok, err)
	}
	del := base
	del.verb = "DEL"
	del.mustRun(t)
	if err := l.srv.WaitLease(addr.Addr(), 5*time.Second, func(sl dhcptest.Lease, ok bool) bool { return !ok || !sl.Active }); err != nil {
		t.Errorf("RELEASE on the reference plugin's DEL not in the server's database: %v", err)
	}
}
