package k8s_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/medianet/medianet/internal/containerdtest"
	"github.com/medianet/medianet/internal/nstest"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// multusNode is a node as Multus sees it: a namespace whose LAN link is
// called eth1 (the master the manifests name; a veth of the test's own
// LAN, renamed inside the node's namespace), where every CNI plugin runs.
type multusNode struct {
	ns    *nstest.NS
	lan   *nstest.LAN
	cni   *libcni.CNIConfig
	cache string
}

func newMultusNode(t *testing.T) *multusNode {
	t.Helper()
	nstest.SkipUnlessRoot(t)
	lan := nstest.NewLAN(t, "mnm")
	h := lan.Host.Handle(t)
	l, err := h.LinkByName(lan.Master)
	must(t, err)
	must(t, h.LinkSetDown(l))
	must(t, h.LinkSetName(l, "eth1"))
	must(t, h.LinkSetUp(l))
	lan.Master = "eth1"
	cache := t.TempDir()
	return &multusNode{ns: lan.Host, lan: lan, cache: cache,
		cni: libcni.NewCNIConfigWithCacheDir([]string{bins, containerdtest.RefPlugins}, cache, nil)}
}

// clusterNet is the pod's primary network, the way a cluster's default
// network gives every pod eth0 and its default route: the reference bridge
// plugin with host-local, IPv4 only.
func (n *multusNode) clusterNet(t *testing.T) *libcni.NetworkConfigList {
	t.Helper()
	return confList(t, fmt.Sprintf(`{"cniVersion":"1.0.0","name":"cluster","plugins":[{"type":"bridge","bridge":"cni0",
		"isGateway":true,"isDefaultGateway":true,
		"ipam":{"type":"host-local","ranges":[[{"subnet":"10.244.1.0/24"}]],"dataDir":%q}}]}`, t.TempDir()))
}

// confList parses a network configuration, a list or a single plugin's.
func confList(t *testing.T, raw string) *libcni.NetworkConfigList {
	t.Helper()
	if strings.Contains(raw, `"plugins"`) {
		l, err := libcni.ConfListFromBytes([]byte(raw))
		mustf(t, err, "conflist %s", raw)
		return l
	}
	// A single plugin's configuration, as a NAD may hold: wrap it in a
	// list of one, as libcni (and Multus) do.
	var head struct {
		Name       string `json:"name"`
		CNIVersion string `json:"cniVersion"`
	}
	mustf(t, json.Unmarshal([]byte(raw), &head), "config %s", raw)
	wrapped, err := json.Marshal(map[string]any{"name": head.Name, "cniVersion": head.CNIVersion, "plugins": []json.RawMessage{json.RawMessage(raw)}})
	must(t, err)
	l, err := libcni.ConfListFromBytes(wrapped)
	mustf(t, err, "config %s", raw)
	return l
}

// kpod is a pod's network namespace with the attachments made in it.
type kpod struct {
	node *multusNode
	ns   *nstest.NS
	id   string
}

func (n *multusNode) newPod(t *testing.T, id string) *kpod {
	return &kpod{node: n, ns: nstest.NewNS(t, "mnkp"), id: id}
}

// rt is the runtime configuration Multus passes for one attachment: the
// pod's CNI args and the capability args of its network selection.
func (p *kpod) rt(ifname string, caps map[string]any) *libcni.RuntimeConf {
	return &libcni.RuntimeConf{ContainerID: p.id, NetNS: p.ns.Path, IfName: ifname, CapabilityArgs: caps,
		Args: [][2]string{{"IgnoreUnknown", "true"}, {"K8S_POD_NAMESPACE", "media"}, {"K8S_POD_NAME", p.id},
			{"K8S_POD_INFRA_CONTAINER_ID", p.id}, {"K8S_POD_UID", "uid-" + p.id}}}
}

// add runs ADD of list for ifname, the plugins running in the node's
// namespace, and returns the result.
func (p *kpod) add(list *libcni.NetworkConfigList, ifname string, caps map[string]any) (*current.Result, error) {
	var res *current.Result
	err := p.node.ns.Do(func() error {
		r, err := p.node.cni.AddNetworkList(context.Background(), list, p.rt(ifname, caps))
		if err != nil {
			return err
		}
		res, err = current.NewResultFromResult(r)
		return err
	})
	return res, err
}

// del runs DEL of list for ifname.
func (p *kpod) del(list *libcni.NetworkConfigList, ifname string, caps map[string]any) error {
	return p.node.ns.Do(func() error {
		return p.node.cni.DelNetworkList(context.Background(), list, p.rt(ifname, caps))
	})
}

// routes is the pod's main routing table, both families, one line per
// route (multipath routes with their next hops), sorted.
func (p *kpod) routes(t *testing.T) []string {
	t.Helper()
	h := p.ns.Handle(t)
	names := map[int]string{}
	links, err := h.LinkList()
	must(t, err)
	for _, l := range links {
		names[l.Attrs().Index] = l.Attrs().Name
	}
	var out []string
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		rs, err := h.RouteList(nil, fam)
		if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
			t.Fatal(err)
		}
		for _, r := range rs {
			s := fmt.Sprintf("%s via %s dev %s metric %d", r.Dst, r.Gw, names[r.LinkIndex], r.Priority)
			for _, nh := range r.MultiPath {
				s += fmt.Sprintf(" nexthop via %s dev %s", nh.Gw, names[nh.LinkIndex])
			}
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}

// checkKept fails the test unless every route of before is still in the
// pod's table: an ADD beside eth0 never replaces eth0's routes.
func (p *kpod) checkKept(t *testing.T, before []string) {
	t.Helper()
	now := p.routes(t)
	for _, r := range before {
		if !slices.Contains(now, r) {
			t.Errorf("the ADD changed the pod's route %q; routes now:\n%s", r, strings.Join(now, "\n"))
		}
	}
}

// checkRestored fails the test unless the pod's routes are exactly
// before: a DEL leaves the other interfaces' routes as they were.
func (p *kpod) checkRestored(t *testing.T, before []string) {
	t.Helper()
	if after := p.routes(t); !slices.Equal(after, before) {
		t.Errorf("after DEL the routes are\n%s\nwant, as before the ADD,\n%s", strings.Join(after, "\n"), strings.Join(before, "\n"))
	}
}

// egress returns the interface and gateway the pod's kernel picks for
// dst: a route lookup, no packet is sent.
func (p *kpod) egress(t *testing.T, dst netip.Addr) (string, netip.Addr) {
	t.Helper()
	h := p.ns.Handle(t)
	rs, err := h.RouteGet(dst.AsSlice())
	if err != nil || len(rs) == 0 {
		t.Fatalf("route get %s in the pod: %v", dst, err)
	}
	l, err := h.LinkByIndex(rs[0].LinkIndex)
	must(t, err)
	gw, _ := netip.AddrFromSlice(rs[0].Gw)
	return l.Attrs().Name, gw.Unmap()
}

// link returns ifname's link in the pod and its global addresses.
func (p *kpod) link(t *testing.T, ifname string) (netlink.Link, []netip.Addr) {
	t.Helper()
	h := p.ns.Handle(t)
	l, err := h.LinkByName(ifname)
	mustf(t, err, "pod %s: %s", p.id, ifname)
	as, err := h.AddrList(l, netlink.FAMILY_ALL)
	must(t, err)
	var addrs []netip.Addr
	for _, a := range as {
		if a.Scope == int(netlink.SCOPE_UNIVERSE) {
			ip, _ := netip.AddrFromSlice(a.IP)
			addrs = append(addrs, ip.Unmap())
		}
	}
	return l, addrs
}

// deleteDefaults is Multus's DeleteDefaultGW: for a pod whose network
// selection gives `default-route` to another attachment, Multus deletes
// the default routes of each other interface right after its ADD (eth0's
// before the second attachment's ADD runs), and those of the selected
// attachment before setDefault.
func (p *kpod) deleteDefaults(t *testing.T, ifname string) {
	t.Helper()
	h := p.ns.Handle(t)
	l, err := h.LinkByName(ifname)
	must(t, err)
	rs, err := h.RouteList(l, netlink.FAMILY_ALL)
	must(t, err)
	for _, r := range rs {
		if ones, _ := r.Dst.Mask.Size(); r.Dst == nil || ones == 0 {
			mustf(t, h.RouteDel(&r), "delete default route %v", r)
		}
	}
}

// setDefault is Multus's SetDefaultGW after the selected attachment's ADD:
// its default routes go and one via gw is added (one already there is
// fine, as Multus ignores EEXIST).
func (p *kpod) setDefault(t *testing.T, ifname string, gw netip.Addr) {
	t.Helper()
	p.deleteDefaults(t, ifname)
	h := p.ns.Handle(t)
	l, err := h.LinkByName(ifname)
	must(t, err)
	err = h.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Gw: net.IP(gw.AsSlice())})
	if err != nil && !errors.Is(err, unix.EEXIST) {
		t.Fatalf("Multus SetDefaultGW via %s dev %s: %v", gw, ifname, err)
	}
}
