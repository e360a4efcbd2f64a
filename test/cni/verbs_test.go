package cni_test

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"testing"

	"github.com/medianet/medianet/internal/nstest"
)

// families are the address setups every verb is run with.
var families = []struct {
	name    string
	subnets []any
	peer    []netip.Prefix // a LAN peer's addresses
}{
	{"ipv4", []any{map[string]string{"subnet": "10.91.0.0/24", "gateway": "10.91.0.254"}},
		[]netip.Prefix{netip.MustParsePrefix("10.91.0.200/24")}},
	{"ipv6", []any{map[string]string{"subnet": "fd91::/64", "gateway": "fd91::fe"}},
		[]netip.Prefix{netip.MustParsePrefix("fd91::c8/64")}},
	{"dual", []any{
		map[string]string{"subnet": "10.92.0.0/24", "gateway": "10.92.0.254"},
		map[string]string{"subnet": "fd92::/64", "gateway": "fd92::fe"}},
		[]netip.Prefix{netip.MustParsePrefix("10.92.0.200/24"), netip.MustParsePrefix("fd92::c8/64")}},
}

// versions are the spec versions medianet speaks, with the verbs each allows.
var versions = []struct {
	v             string
	check, gcStat bool
}{
	{"0.3.0", false, false},
	{"0.3.1", false, false},
	{"0.4.0", true, false},
	{"1.0.0", true, false},
	{"1.1.0", true, true},
}

// TestVerbs runs ADD, CHECK, STATUS, GC and DEL (as each spec version
// allows them) for IPv4, IPv6 and dual stack, checking the kernel and the
// store after each.
func TestVerbs(t *testing.T) {
	nstest.SkipUnlessRoot(t)
	for _, fam := range families {
		t.Run(fam.name, func(t *testing.T) {
			lan := nstest.NewLAN(t, "mncv")
			dataDir := t.TempDir()
			for i, ver := range versions {
				t.Run(ver.v, func(t *testing.T) {
					ctr := nstest.NewNS(t, "mncc")
					cid := fmt.Sprintf("verbs-%s-%d", fam.name, i)
					conf := netConf{version: ver.v, master: lan.Master, dataDir: dataDir, subnets: fam.subnets,
						extra: map[string]any{"skipDAD": true}}.json()
					runVerbs(t, lan, ctr, cid, conf, ver.v, ver.check, ver.gcStat, len(fam.subnets))
				})
			}
		})
	}
}

func runVerbs(t *testing.T, lan *nstest.LAN, ctr *nstest.NS, cid string, conf []byte, ver string, check, gcStat bool, nAddrs int) {
	base := inv{host: lan.Host, cid: cid, netns: ctr.Path, conf: conf}
	add := base
	add.verb = "ADD"
	addOut := add.mustRun(t)
	r := parseResult(t, addOut)
	if r.CNIVersion != ver {
		t.Errorf("result cniVersion = %q, want %q", r.CNIVersion, ver)
	}
	if len(r.IPs) != nAddrs {
		t.Fatalf("result has %d addresses, want %d: %+v", len(r.IPs), nAddrs, r.IPs)
	}
	if len(r.Interfaces) != 1 || r.Interfaces[0].Name != "eth0" || r.Interfaces[0].Sandbox != ctr.Path {
		t.Errorf("result interfaces = %+v, want eth0 in %s", r.Interfaces, ctr.Path)
	}
	got, ok := linkAddrs(t, ctr, "eth0")
	if !ok || !containsAll(got, r.prefixes(t)) {
		t.Fatalf("eth0 in container: addresses %v (exists %v), want %v", got, ok, r.prefixes(t))
	}
	if names := macvlans(t, lan.Host); len(names) != 0 {
		t.Errorf("macvlans in host namespace = %v, want none", names)
	}
	if as := allocations(t, base.conf2dir(t), "media"); len(as) != 1 || as[0].ContainerID != cid {
		t.Fatalf("allocations after ADD = %+v, want one for %s", as, cid)
	}
	// A repeated ADD of the same attachment fails (the link name is taken)
	// and must leave the first one intact.
	if again := add.run(t); again.Exit == 0 {
		t.Errorf("second ADD of %s succeeded, want an error: %v", cid, again)
	}
	if got, ok := linkAddrs(t, ctr, "eth0"); !ok || !containsAll(got, r.prefixes(t)) {
		t.Fatalf("eth0 after a failed second ADD: addresses %v (exists %v), want %v", got, ok, r.prefixes(t))
	}
	if check {
		c := base
		c.verb, c.conf = "CHECK", withPrev(t, conf, addOut.Stdout)
		c.mustRun(t)
	}
	if gcStat {
		st := base
		st.verb = "STATUS"
		st.mustRun(t)
		gc := base
		gc.verb = "GC"
		gc.conf = setKey(t, conf, "cni.dev/valid-attachments", []map[string]string{{"containerID": cid, "ifname": "eth0"}})
		gc.mustRun(t)
		if as := allocations(t, base.conf2dir(t), "media"); len(as) != 1 {
			t.Fatalf("allocations after GC keeping %s = %+v, want it kept", cid, as)
		}
	}
	del := base
	del.verb = "DEL"
	del.mustRun(t)
	if _, ok := linkAddrs(t, ctr, "eth0"); ok {
		t.Errorf("eth0 still in container after DEL")
	}
	if as := allocations(t, base.conf2dir(t), "media"); len(as) != 0 {
		t.Errorf("allocations after DEL = %+v, want none", as)
	}
	del.mustRun(t) // idempotent
}

// conf2dir returns the ipam.dataDir of i's configuration.
func (i inv) conf2dir(t testing.TB) string {
	t.Helper()
	var c struct {
		IPAM struct {
			DataDir string `json:"dataDir"`
		} `json:"ipam"`
	}
	if err := json.Unmarshal(i.conf, &c); err != nil || c.IPAM.DataDir == "" {
		t.Fatalf("configuration without ipam.dataDir: %s", i.conf)
	}
	return c.IPAM.DataDir
}
