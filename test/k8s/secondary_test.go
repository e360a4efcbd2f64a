package k8s_test

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	current "github.com/containernetworking/cni/pkg/types/100"
)

// Addresses of the secondary-network tests: the media LAN, dual stack,
// and an outside address for route lookups (no packet is sent to it).
var (
	mediaGW4 = netip.MustParseAddr("192.168.77.254")
	mediaGW6 = netip.MustParseAddr("fd77::fe")
	outside4 = netip.MustParseAddr("203.0.113.1")
	outside6 = netip.MustParseAddr("2001:db8::1")
)

// mediaNet is a medianet attachment of the media LAN, dual stack, with
// extra top-level keys and ipam.routes.
func mediaNet(t *testing.T, n *multusNode, top string, ipamRoutes string) *libcni.NetworkConfigList {
	t.Helper()
	return confList(t, fmt.Sprintf(`{"cniVersion":"1.0.0","name":"media","type":"medianet","master":"eth1","skipDAD":true%s,
		"ipam":{"type":"medianet-ipam","node":"node-a","dataDir":%q,"routes":%s,
		"subnets":[{"subnet":"192.168.77.0/24","gateway":%q},{"subnet":"fd77::/64","gateway":%q}]}}`,
		top, t.TempDir(), ipamRoutes, mediaGW4, mediaGW6))
}

// TestSecondaryDefaultRoute is the rule of docs/kubernetes.md in the
// kernel, per family: beside eth0's IPv4 default route, medianet's net1
// adds none of its own unless a routes entry asks; it adds the IPv6 one,
// which the pod lacked; alone in a pod it gives both. DEL of net1 leaves
// the pod's routes exactly as they were before its ADD, and CHECK agrees
// with what ADD did.
func TestSecondaryDefaultRoute(t *testing.T) {
	n := newMultusNode(t)
	cluster := n.clusterNet(t)
	cases := []struct {
		name       string
		eth0       bool
		top, ipamR string
		want4      string // interface for outside4 after ADD
		want6      string // interface for outside6 after ADD
		resDefault []string
	}{
		{"beside eth0", true, "", `[]`, "eth0", "net1", []string{"::/0"}},
		{"ipam.routes asks for 0.0.0.0/0", true, "", `[{"dst":"0.0.0.0/0"}]`, "net1", "net1", []string{"0.0.0.0/0", "::/0"}},
		{"routes asks for 0.0.0.0/0", true, `,"routes":[{"dst":"0.0.0.0/0","gw":"192.168.77.254"}]`, `[]`, "net1", "net1", []string{"0.0.0.0/0", "::/0"}},
		{"only network", false, "", `[]`, "net1", "net1", []string{"0.0.0.0/0", "::/0"}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := n.newPod(t, fmt.Sprintf("sec-%d", i))
			if tc.eth0 {
				_, err := p.add(cluster, "eth0", nil)
				must(t, err)
			}
			before := p.routes(t)
			media := mediaNet(t, n, tc.top, tc.ipamR)
			res, err := p.add(media, "net1", nil)
			must(t, err)
			if got := defaultsOf(res); !slices.Equal(got, tc.resDefault) {
				t.Errorf("result default routes %v, want %v", got, tc.resDefault)
			}
			if dev, _ := p.egress(t, outside4); dev != tc.want4 {
				t.Errorf("IPv4 egress via %s, want %s; routes:\n%s", dev, tc.want4, strings.Join(p.routes(t), "\n"))
			}
			if dev, _ := p.egress(t, outside6); dev != tc.want6 {
				t.Errorf("IPv6 egress via %s, want %s", dev, tc.want6)
			}
			p.checkKept(t, before)
			must(t, n.ns.Do(func() error { return n.cni.CheckNetworkList(context.Background(), media, p.rt("net1", nil)) }))
			must(t, p.del(media, "net1", nil))
			p.checkRestored(t, before)
		})
	}
}

// TestIPAMRoutesBehindReferenceMacvlan: medianet-ipam returns ipam.routes
// as host-local does, so the reference macvlan installs them (a gw-less
// entry via the gateway), also a requested default route beside eth0's,
// which stays and is back in use after DEL.
func TestIPAMRoutesBehindReferenceMacvlan(t *testing.T) {
	n := newMultusNode(t)
	p := n.newPod(t, "refmv")
	_, err := p.add(n.clusterNet(t), "eth0", nil)
	must(t, err)
	before := p.routes(t)
	ref := confList(t, fmt.Sprintf(`{"cniVersion":"1.0.0","name":"media-macvlan","type":"macvlan","master":"eth1","mode":"bridge",
		"ipam":{"type":"medianet-ipam","subnet":"192.168.77.0/24","gateway":%q,"node":"node-a","dataDir":%q,
		"routes":[{"dst":"10.99.0.0/16"},{"dst":"0.0.0.0/0"}]}}`, mediaGW4, t.TempDir()))
	res, err := p.add(ref, "net1", nil)
	must(t, err)
	want := []string{"10.99.0.0/16 via 192.168.77.254 dev net1 metric 0", "0.0.0.0/0 via 192.168.77.254 dev net1 metric 0"}
	for _, w := range want {
		if !slices.Contains(p.routes(t), w) {
			t.Errorf("pod routes lack %q:\n%s", w, strings.Join(p.routes(t), "\n"))
		}
	}
	if len(res.Routes) != 2 {
		t.Errorf("result routes %v, want the two of ipam.routes", res.Routes)
	}
	if dev, gw := p.egress(t, outside4); dev != "net1" || gw != mediaGW4 {
		t.Errorf("egress %s via %s, want net1 via %s (the requested default route)", dev, gw, mediaGW4)
	}
	must(t, p.del(ref, "net1", nil))
	p.checkRestored(t, before)
	if dev, _ := p.egress(t, outside4); dev != "eth0" {
		t.Errorf("after DEL egress via %s, want eth0", dev)
	}
}

// defaultsOf lists the default routes of a result, sorted.
func defaultsOf(r *current.Result) []string {
	var out []string
	for _, rt := range r.Routes {
		if ones, _ := rt.Dst.Mask.Size(); ones == 0 {
			out = append(out, rt.Dst.String())
		}
	}
	slices.Sort(out)
	return out
}
