package cni

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/medianet/medianet/ipam"
	"github.com/medianet/medianet/macvlan"
)

const mainConf = `{"cniVersion":"1.1.0","name":"media","type":"medianet","master":"eth1","mode":"bridge","mtu":1500,
"mac":"02:00:00:00:00:01","skipDAD":true,"hostShim":true,"hostShimAddresses":["fd00::fe/128"],
"routes":[{"dst":"10.10.0.0/16","gw":"192.168.100.1"},{"dst":"fd10::/64"}],
"runtimeConfig":{"mac":"02:00:00:00:00:02"},
"ipam":{"type":"medianet-ipam","subnet":"192.168.100.0/24","gateway":"192.168.100.254"}}`

func TestParseMainConfig(t *testing.T) {
	c, err := ParseMainConfig([]byte(mainConf))
	if err != nil {
		t.Fatal(err)
	}
	if !c.InProcess() || c.IPAM.IPAM.Network != "media" {
		t.Errorf("IPAM = %+v, want in-process for network media", c.IPAM)
	}
	if got, want := c.Spec.MAC.String(), "02:00:00:00:00:02"; got != want {
		t.Errorf("mac = %s, want the runtimeConfig's %s", got, want)
	}
	if c.Spec.Mode != macvlan.ModeBridge || c.Spec.MTU != 1500 || c.Spec.Master != "eth1" {
		t.Errorf("spec = %+v", c.Spec)
	}
	wantRoutes := []macvlan.Route{
		{Dst: netip.MustParsePrefix("10.10.0.0/16"), Gw: netip.MustParseAddr("192.168.100.1")},
		{Dst: netip.MustParsePrefix("fd10::/64")},
	}
	if fmt.Sprint(c.Routes) != fmt.Sprint(wantRoutes) {
		t.Errorf("routes = %v, want %v", c.Routes, wantRoutes)
	}
	if c.Shim == nil || len(c.Shim.Addresses) != 1 {
		t.Errorf("shim = %+v, want one address", c.Shim)
	}
	if n := c.ShimName("eth1"); len(n) > 15 || !strings.HasPrefix(n, "mns") || n == c.ShimName("eth2") {
		t.Errorf("ShimName(eth1) = %q, want a short name unique per master", n)
	}

	deleg, err := ParseMainConfig([]byte(`{"name":"m","type":"medianet","ipam":{"type":"host-local","ranges":[[{"subnet":"10.0.0.0/24"}]]}}`))
	if err != nil || deleg.InProcess() {
		t.Errorf("host-local ipam: %+v, %v; want a delegated config", deleg, err)
	}
}

func TestParseMainConfigErrors(t *testing.T) {
	const ip = `"ipam":{"type":"medianet-ipam","subnet":"10.0.0.0/24"}`
	cases := []struct{ conf, field string }{
		{`{"name":"m","mode":"bridged",` + ip + `}`, "mode"},
		{`{"name":"m","mtu":-5,` + ip + `}`, "mtu"},
		{`{"name":"m","mtu":20,` + ip + `}`, "mtu"},
		{`{"name":"m","vlan":4095,` + ip + `}`, "vlan"},
		{`{"name":"m","master":"averyveryverylongname",` + ip + `}`, "master"},
		{`{"name":"m","mac":"zz",` + ip + `}`, "mac"},
		{`{"name":"m","runtimeConfig":{"mac":"ff:ff:ff:ff:ff:ff"},` + ip + `}`, "runtimeConfig.mac"},
		{`{"name":"m","routes":[{"dst":"10.0.0.0/8","gw":"fd00::1"}],` + ip + `}`, "routes[0].gw"},
		{`{"name":"m","hostShim":true,"mode":"vepa",` + ip + `}`, "hostShim"},
		{`{"name":"m","hostShimName":"x",` + ip + `}`, "hostShimName"},
		{`{"name":"m","hostShim":true,"hostShimAddresses":["10.0.0.1"],` + ip + `}`, "hostShimAddresses[0]"},
		{`{"name":"m","ipam":{}}`, "ipam.type"},
		{`{"ipam":{"type":"host-local"}}`, "name"},
		{`{"name":"m","ipam":{"type":"medianet-ipam"}}`, "ipam.subnet"},
		{`{"name":"m","mtu":"9000",` + ip + `}`, "mtu"},
	}
	for _, tc := range cases {
		_, err := ParseMainConfig([]byte(tc.conf))
		if err == nil || !errors.Is(err, ipam.ErrConfig) || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("ParseMainConfig(%s) = %v, want ErrConfig naming %q", tc.conf, err, tc.field)
		}
		if e := MainError(err); e == nil || e.Code != types.ErrInvalidNetworkConfig {
			t.Errorf("MainError(%v) = %v, want code 7", err, e)
		}
	}
}

func TestMainErrorCodes(t *testing.T) {
	cases := []struct {
		err    error
		code   uint
		status uint
	}{
		{fmt.Errorf("x: %w", macvlan.ErrMasterNotFound), 7, 50},
		{fmt.Errorf("x: %w", macvlan.ErrInvalidSpec), 7, 7},
		{fmt.Errorf("x: %w", ipam.ErrExhausted), CodeExhausted, 50},
		{fmt.Errorf("x: %w", ipam.ErrBusy), 11, 11},
		{fmt.Errorf("x: %w", macvlan.ErrLinkExists), 999, 999},
	}
	for _, tc := range cases {
		if got := MainError(tc.err).Code; got != tc.code {
			t.Errorf("MainError(%v).Code = %d, want %d", tc.err, got, tc.code)
		}
		if got := MainStatusError(tc.err).Code; got != tc.status {
			t.Errorf("MainStatusError(%v).Code = %d, want %d", tc.err, got, tc.status)
		}
	}
	if got := SkelError(types.NewError(types.ErrDecodingFailure, "bad", "")); got.Code != 7 || !strings.Contains(got.Msg, "JSON") {
		t.Errorf("SkelError(decoding failure) = %v, want 7 naming JSON", got)
	}
	if got := SkelError(types.NewError(types.ErrIncompatibleCNIVersion, "v", "")); got.Code != types.ErrIncompatibleCNIVersion {
		t.Errorf("SkelError(version) = %v, want it unchanged", got)
	}
}

func TestL3Config(t *testing.T) {
	c, err := ParseMainConfig([]byte(`{"name":"m","routes":[{"dst":"10.9.0.0/16"}],"ipam":{"type":"host-local"}}`))
	if err != nil {
		t.Fatal(err)
	}
	_, n4, _ := net.ParseCIDR("10.0.0.5/24")
	n4.IP = net.ParseIP("10.0.0.5")
	_, n6, _ := net.ParseCIDR("fd00::5/64")
	n6.IP = net.ParseIP("fd00::5")
	_, def4, _ := net.ParseCIDR("0.0.0.0/0")
	_, other, _ := net.ParseCIDR("172.16.0.0/12")
	res := &current.Result{
		IPs: []*current.IPConfig{
			{Address: *n4, Gateway: net.ParseIP("10.0.0.1")},
			{Address: *n6, Gateway: net.ParseIP("fd00::1")},
		},
		Routes: []*types.Route{{Dst: *def4}, {Dst: *other}, {Dst: mustNet("10.9.0.0/16")}},
	}
	cfg, err := l3Config(c, res, families{v4: true, v6: true})
	if err != nil {
		t.Fatal(err)
	}
	// The result's 0.0.0.0/0 asks for the IPv4 default route: it is a route
	// (via the family's gateway), and only IPv6 gets one from its gateway.
	want := "{[10.0.0.5/24 fd00::5/64] [fd00::1] [{0.0.0.0/0 10.0.0.1} {172.16.0.0/12 10.0.0.1} {10.9.0.0/16 invalid IP}] false}"
	if got := fmt.Sprint(cfg); got != want {
		t.Errorf("l3Config = %s, want %s", got, want)
	}
}

func mustNet(s string) net.IPNet {
	_, n, err := net.ParseCIDR(s)
	if err != nil {
		panic(err)
	}
	return *n
}

func FuzzParseMainConfig(f *testing.F) {
	f.Add([]byte(mainConf))
	f.Add([]byte(`{"name":"m","type":"medianet","vlan":100,"ipam":{"type":"host-local"}}`))
	f.Add([]byte(`{"name":"m","mode":"passthru","mtu":9000,"ipam":{"type":"medianet-ipam","subnets":["10.0.0.0/24","fd00::/64"]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseMainConfig(data)
		if err != nil {
			if !errors.Is(err, ipam.ErrConfig) {
				t.Fatalf("ParseMainConfig error %v does not wrap ErrConfig", err)
			}
			return
		}
		if c.Net.Name == "" || c.Net.IPAM.Type == "" {
			t.Fatalf("accepted config without name or ipam.type: %s", data)
		}
		if c.Spec.MTU < 0 || c.Net.VLAN < 0 || c.Net.VLAN > 4094 {
			t.Fatalf("accepted mtu %d vlan %d", c.Spec.MTU, c.Net.VLAN)
		}
		if _, err := macvlan.ParseMode(string(c.Spec.Mode)); err != nil {
			t.Fatalf("accepted mode %q", c.Spec.Mode)
		}
		if c.InProcess() != (c.Net.IPAM.Type == IPAMType) {
			t.Fatalf("InProcess = %v for ipam.type %q", c.InProcess(), c.Net.IPAM.Type)
		}
		if c.Shim != nil && c.Spec.Mode != macvlan.ModeBridge {
			t.Fatalf("host shim accepted with mode %s", c.Spec.Mode)
		}
	})
}
