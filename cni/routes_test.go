package cni

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/medianet/medianet/ipam"
)

// TestL3ConfigDefaultRoute is the secondary-network rule on the parsed
// side: a gateway gives the default route only for the families ADD found
// without one, a routes entry for 0.0.0.0/0 or ::/0 always does, and CHECK
// expects only what the previous result lists.
func TestL3ConfigDefaultRoute(t *testing.T) {
	ips := []*current.IPConfig{
		{Address: net.IPNet{IP: net.ParseIP("10.0.0.5").To4(), Mask: net.CIDRMask(24, 32)}, Gateway: net.ParseIP("10.0.0.1")},
		{Address: net.IPNet{IP: net.ParseIP("fd00::5"), Mask: net.CIDRMask(64, 128)}, Gateway: net.ParseIP("fd00::1")},
	}
	cases := []struct {
		name      string
		top       string // top-level routes JSON
		resRoutes []*types.Route
		gwDefault families
		wantGW    string
		wantRT    string
	}{
		{"only network", `[]`, nil, families{v4: true, v6: true}, "[10.0.0.1 fd00::1]", "[]"},
		{"beside eth0 v4 and v6", `[]`, nil, families{}, "[]", "[]"},
		{"beside eth0 v4 only", `[]`, nil, families{v6: true}, "[fd00::1]", "[]"},
		{"ipam.routes asks v4", `[]`, []*types.Route{{Dst: mustNet("0.0.0.0/0")}}, families{}, "[]", "[{0.0.0.0/0 10.0.0.1}]"},
		{"routes asks v6 with gw", `[{"dst":"::/0","gw":"fd00::99"}]`, nil, families{}, "[]", "[{::/0 fd00::99}]"},
		{"asked and free: no duplicate", `[{"dst":"0.0.0.0/0","gw":"10.0.0.1"}]`, nil, families{v4: true, v6: true}, "[fd00::1]", "[{0.0.0.0/0 10.0.0.1}]"},
		{"check: prev lists the default", `[]`, []*types.Route{{Dst: mustNet("0.0.0.0/0"), GW: net.ParseIP("10.0.0.1")}}, families{}, "[]", "[{0.0.0.0/0 10.0.0.1}]"},
		{"check: prev lists none", `[]`, nil, families{}, "[]", "[]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseMainConfig(fmt.Appendf(nil, `{"name":"m","routes":%s,"ipam":{"type":"host-local"}}`, tc.top))
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := l3Config(c, &current.Result{IPs: ips, Routes: tc.resRoutes}, tc.gwDefault)
			if err != nil {
				t.Fatal(err)
			}
			if got := fmt.Sprint(cfg.Gateways); got != tc.wantGW {
				t.Errorf("gateways = %s, want %s", got, tc.wantGW)
			}
			if got := fmt.Sprint(cfg.Routes); got != tc.wantRT {
				t.Errorf("routes = %s, want %s", got, tc.wantRT)
			}
		})
	}
}

// TestIPAMRoutesInResult: medianet-ipam returns ipam.routes as host-local
// does (dst, and gw only when given) in every spec version that has
// routes, and no default route of its own.
func TestIPAMRoutesInResult(t *testing.T) {
	dir := t.TempDir()
	var p Plugin
	extra := `,"routes":[{"dst":"0.0.0.0/0"},{"dst":"10.20.0.0/16","gw":"10.10.0.9"},{"dst":"fd20::/48"}]`
	for _, ver := range []string{"0.3.1", "0.4.0", "1.0.0", "1.1.0"} {
		args, c, ips := load(t, &p, conf(t, dir, ver, extra), "routes-"+ver, "")
		res, err := p.Add(context.Background(), args, c, ips)
		if err != nil {
			t.Fatalf("%s: Add: %v", ver, err)
		}
		conv, err := res.GetAsVersion(ver)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := json.Marshal(conv)
		want := `"routes":[{"dst":"0.0.0.0/0"},{"dst":"10.20.0.0/16","gw":"10.10.0.9"},{"dst":"fd20::/48"}]`
		if !strings.Contains(string(raw), want) {
			t.Errorf("%s result %s lacks %s", ver, raw, want)
		}
	}
	args, c, ips := load(t, &p, conf(t, dir, "1.0.0", ""), "no-routes", "")
	res, err := p.Add(context.Background(), args, c, ips)
	if err != nil || len(res.Routes) != 0 {
		t.Errorf("without ipam.routes: routes %v, err %v; want none", res.Routes, err)
	}
}

// TestIPAMRoutesErrors: a bad ipam.routes entry is a configuration error
// naming it, for the main plugin (in-process IPAM) and for CheckIPAMRoutes,
// which medianet-ipam's parser runs.
func TestIPAMRoutesErrors(t *testing.T) {
	cases := []struct{ routes, field string }{
		{`[{"dst":"10.0.0.0"}]`, "ipam.routes[0].dst"},
		{`[{"dst":"0.0.0.0/0"},{"dst":"::/0","gw":"10.0.0.1"}]`, "ipam.routes[1].gw"},
		{`[{"dst":"10.1.0.0/16","gw":"nonsense"}]`, "ipam.routes[0].gw"},
	}
	for _, tc := range cases {
		data := fmt.Appendf(nil, `{"name":"m","type":"medianet","ipam":{"type":"medianet-ipam","subnet":"10.0.0.0/24","routes":%s}}`, tc.routes)
		_, err := ParseMainConfig(data)
		if err == nil || !errors.Is(err, ipam.ErrConfig) || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("ParseMainConfig(%s) = %v, want ErrConfig naming %s", tc.routes, err, tc.field)
		}
		var n NetConf
		if err := json.Unmarshal(data, &n); err != nil {
			t.Fatal(err)
		}
		if err := CheckIPAMRoutes(&n); err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("CheckIPAMRoutes(%s) = %v, want an error naming %s", tc.routes, err, tc.field)
		}
	}
	// Another IPAM's routes are that plugin's to check.
	if _, err := ParseMainConfig([]byte(`{"name":"m","ipam":{"type":"host-local","routes":[{"dst":"x"}]}}`)); err != nil {
		t.Errorf("host-local's routes checked by medianet: %v", err)
	}
}

// TestDefaultRoutesNoNetns: DEL may come without a namespace; ADD never
// does, but a missing one must be an error naming it, not "no routes".
func TestDefaultRoutesNoNetns(t *testing.T) {
	if f, err := defaultRoutes(""); err != nil || f != (families{}) {
		t.Errorf(`defaultRoutes("") = %+v, %v; want none`, f, err)
	}
	if _, err := defaultRoutes("/nonexistent/netns"); err == nil || !strings.Contains(err.Error(), "/nonexistent/netns") {
		t.Errorf("defaultRoutes(missing) = %v, want an error naming the path", err)
	}
}

// TestIPAMRoutesRefusedByLoad: medianet-ipam (Plugin.Load, ParseConfig)
// refuses a bad ipam.routes entry with code 7 naming it, rather than
// leaving the route out of its result.
func TestIPAMRoutesRefusedByLoad(t *testing.T) {
	var p Plugin
	data := conf(t, t.TempDir(), "1.0.0", `,"routes":[{"dst":"0.0.0.0/0"},{"dst":"10.1.0.0/16","gw":"fd00::1"}]`)
	_, _, err := p.Load(&skel.CmdArgs{ContainerID: "c", IfName: "eth0", StdinData: data})
	if e := Error(err); e == nil || e.Code != types.ErrInvalidNetworkConfig || !strings.Contains(e.Msg, "ipam.routes[1].gw") {
		t.Errorf("Load with a bad ipam.routes entry: %v, want code 7 naming ipam.routes[1].gw", e)
	}
}
