package cni

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/medianet/medianet/dhcp/dhcpapi"
	"github.com/medianet/medianet/ipam"
)

func TestParseDHCPConfig(t *testing.T) {
	for _, tc := range []struct {
		name, ipam string
		want       DHCPConfig
		err        string // substring of the error; "" for success
	}{
		{"defaults", `{"type":"medianet-ipam","dhcp":{}}`, DHCPConfig{Timeout: DefaultDHCPTimeout}, ""},
		{"keys", `{"type":"medianet-ipam","dhcp":{"timeout":"3s","hostname":"jvb"},"gateway":"10.0.0.9","sticky":"1h"}`,
			DHCPConfig{Timeout: 3 * time.Second, Hostname: "jvb", Sticky: true}, ""},
		{"bad timeout", `{"type":"medianet-ipam","dhcp":{"timeout":"soon"}}`, DHCPConfig{}, "ipam.dhcp.timeout"},
		{"timeout too long", `{"type":"medianet-ipam","dhcp":{"timeout":"5m"}}`, DHCPConfig{}, "ipam.dhcp.timeout"},
		{"with subnet", `{"type":"medianet-ipam","dhcp":{},"subnet":"10.0.0.0/24"}`, DHCPConfig{}, "ipam.subnet does not go with ipam.dhcp"},
		{"with etcd", `{"type":"medianet-ipam","dhcp":{},"etcd":{"endpoints":["http://x"]}}`, DHCPConfig{}, "ipam.etcd does not go with ipam.dhcp"},
		{"bad gateway", `{"type":"medianet-ipam","dhcp":{},"gateway":"fd00::1"}`, DHCPConfig{}, "ipam.gateway"},
		{"bad route", `{"type":"medianet-ipam","dhcp":{},"routes":[{"dst":"x"}]}`, DHCPConfig{}, "ipam.routes[0].dst"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConfig([]byte(`{"cniVersion":"1.1.0","name":"lan","type":"medianet","ipam":` + tc.ipam + `}`))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, ipam.ErrConfig) {
					t.Fatalf("ParseConfig = %v, want a configuration error naming %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := *c.DHCP
			got.Gateway = tc.want.Gateway
			if got != tc.want {
				t.Errorf("DHCP = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestDHCPIdentity(t *testing.T) {
	c := &Config{DHCP: &DHCPConfig{}}
	args := &skel.CmdArgs{ContainerID: "0123456789abcdef", IfName: "net1"}
	if id, host := dhcpIdentity(c, args); id != "medianet/cni/0123456789abcdef/net1" || host != "0123456789ab" {
		t.Errorf("without a pod: %q, %q", id, host)
	}
	c.Workload = "media/janus-0"
	if id, host := dhcpIdentity(c, args); id != "medianet/k8s/media/janus-0/net1" || host != "janus-0" {
		t.Errorf("with a pod: %q, %q", id, host)
	}
}

// TestDHCPResultRoutes: option 121's default entry stands for the router
// without option 3; the default route goes in the result only for a
// namespace without one; ipam.routes replaces the lease's.
func TestDHCPResultRoutes(t *testing.T) {
	l := dhcpapi.Lease{Address: "10.1.0.5/24", Routes: []dhcpapi.Route{{Dst: "0.0.0.0/0", GW: "10.1.0.1"}, {Dst: "10.9.0.0/16", GW: "10.1.0.2"}}}
	c := &Config{DHCP: &DHCPConfig{}}
	res, err := dhcpResult(c, l, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := res.IPs[0].Gateway.String(); got != "10.1.0.1" {
		t.Errorf("gateway %s, want 10.1.0.1 from option 121", got)
	}
	if len(res.Routes) != 2 || res.Routes[0].Dst.String() != "10.9.0.0/16" || res.Routes[1].Dst.String() != "0.0.0.0/0" {
		t.Errorf("routes %v, want 10.9.0.0/16 and the default", res.Routes)
	}
	res, _ = dhcpResult(c, l, true)
	if len(res.Routes) != 1 {
		t.Errorf("beside another default route: routes %v, want only 10.9.0.0/16", res.Routes)
	}
	c.Net.IPAM.Routes = []RouteConf{{Dst: "172.16.0.0/12"}}
	res, _ = dhcpResult(c, l, true)
	if len(res.Routes) != 1 || res.Routes[0].Dst.String() != "172.16.0.0/12" {
		t.Errorf("with ipam.routes: %v, want only 172.16.0.0/12", res.Routes)
	}
}
