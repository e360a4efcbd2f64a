// Package k8s_test drives medianet the way Kubernetes does: through
// containerd's CRI plugin spoken to over gRPC as kubelet speaks it
// (internal/containerdtest), as a second attachment beside a pod's eth0
// the way Multus runs NetworkAttachmentDefinitions, and through the
// DaemonSet's installer. Nodes are built by the tests: the macvlan master
// is a veth end in the host namespace under a name the test picks
// (nstest.NewRootLAN), plugged into a bridge in a namespace of its own;
// no pre-existing interface is ever used.
package k8s_test

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/medianet/medianet/internal/cnitest"
	"github.com/medianet/medianet/internal/containerdtest"
	"github.com/medianet/medianet/internal/nstest"
	"github.com/vishvananda/netlink"
)

// bins holds the binaries under test: $MEDIANET_BIN, or built by TestMain.
var bins string

func TestMain(m *testing.M) {
	os.Exit(cnitest.Main(m, &bins, imaged...))
}

func bin(name string) string { return filepath.Join(bins, name) }

// installed are the binaries the DaemonSet installs on every node.
var installed = []string{"medianet", "medianet-ipam", "medianet-ipam-etcd", "medianet-ipam-kube", "medianetctl"}

// imaged are the binaries of the installer image (scripts/image.sh): the
// installed ones and medianetd, the DaemonSet's node agent.
var imaged = append(slices.Clone(installed), "medianetd")

// The media LAN of the containerd tests: this node (node-a) hands out
// nodeRange; the LAN peer holds the gateway address.
var (
	subnet    = netip.MustParsePrefix("10.77.0.0/24")
	gateway   = netip.MustParseAddr("10.77.0.254")
	nodeRange = netip.MustParsePrefix("10.77.0.0/27")
)

// node is a Kubernetes node as far as pods are concerned: a private
// containerd with medianet in its CNI directories, on a LAN of its own.
type node struct {
	*containerdtest.Containerd
	lan     *nstest.LAN
	peer    *nstest.NS // a LAN host holding the gateway address
	dataDir string     // medianet's store
	logFile string     // medianet's per-call log
}

// newNode starts containerd with medianet (and the reference loopback)
// installed and the conflist of medianetConf loaded.
func newNode(t testing.TB, extra map[string]any) *node {
	t.Helper()
	nstest.SkipUnlessRoot(t)
	containerdtest.SkipUnlessAvailable(t)
	lan := nstest.NewRootLAN(t, "mnk")
	n := &node{lan: lan, dataDir: t.TempDir()}
	n.logFile = filepath.Join(n.dataDir, "medianet.log")
	n.peer = lan.AddPeer(t, netip.PrefixFrom(gateway, subnet.Bits()))
	n.Containerd = containerdtest.Start(t, containerdtest.Options{})
	n.InstallPlugins(bin("medianet"), bin("medianet-ipam"), bin("medianet-ipam-etcd"), bin("medianet-ipam-kube"), "loopback")
	n.WriteConflist("10-media.conflist", medianetConflist(lan.Master, n.dataDir, n.logFile, extra))
	if err := n.WaitNetwork(`"name":"media"`); err != nil {
		t.Fatal(err)
	}
	return n
}

// medianetConflist is the conflist a node would carry for medianet as its
// primary network: cniVersion 1.0.0, the newest containerd 1.6 reads.
func medianetConflist(master, dataDir, logFile string, extra map[string]any) []byte {
	plugin := map[string]any{
		"type": "medianet", "master": master, "mode": "bridge", "logFile": logFile,
		"ipam": map[string]any{
			"type": "medianet-ipam", "subnet": subnet.String(), "gateway": gateway.String(),
			"nodeRanges": map[string][]string{"node-a": {nodeRange.String()}, "node-b": {"10.77.0.32/27"}},
			"node":       "node-a", "dataDir": dataDir,
		},
	}
	for k, v := range extra {
		plugin[k] = v
	}
	b, err := json.Marshal(map[string]any{"cniVersion": "1.0.0", "name": "media", "plugins": []any{plugin}})
	if err != nil {
		panic(err)
	}
	return b
}

// pod is a running pod sandbox as the tests see it.
type pod struct {
	id    string
	ip    netip.Addr // PodSandboxStatus's address
	netns *nstest.NS // the pod's network namespace
}

// runPod runs a pod and reads its status; any failure is fatal.
func (n *node) runPod(t *testing.T, name string) pod {
	t.Helper()
	id, err := n.RunPod(containerdtest.Pod{Name: name, Namespace: "media"})
	if err != nil {
		t.Fatal(err)
	}
	return n.pod(t, id)
}

// pod reads PodSandboxStatus of id: it must be ready with one address and
// a network namespace.
func (n *node) pod(t *testing.T, id string) pod {
	t.Helper()
	st, err := n.Status(id)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.IPs) != 1 || st.Netns == "" {
		t.Fatalf("pod %s: status %+v, want one address and a netns", id, st)
	}
	return pod{id: id, ip: st.IPs[0], netns: &nstest.NS{Name: filepath.Base(st.Netns), Path: st.Netns}}
}

// eth0 returns the kind and global addresses of eth0 in the pod.
func (p pod) eth0(t *testing.T) (kind string, addrs []netip.Addr) {
	t.Helper()
	h, err := p.netns.NewHandle()
	if err != nil {
		t.Fatalf("pod %s netns: %v", p.id, err)
	}
	defer h.Close()
	l, err := h.LinkByName("eth0")
	if err != nil {
		t.Fatalf("pod %s: eth0: %v", p.id, err)
	}
	as, err := h.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range as {
		if a.Scope == int(netlink.SCOPE_UNIVERSE) {
			ip, _ := netip.AddrFromSlice(a.IP)
			addrs = append(addrs, ip.Unmap())
		}
	}
	return l.Type(), addrs
}

// allocation is one entry of `medianetctl ipam list --json`.
type allocation struct {
	Network     string    `json:"network"`
	ContainerID string    `json:"containerID"`
	IfName      string    `json:"ifname"`
	IPs         []string  `json:"ips"`
	Workload    string    `json:"workload"`
	HeldUntil   time.Time `json:"heldUntil"`
}

// ipamList runs medianetctl ipam list --json on dataDir, as an operator
// would, and returns the allocations by container ID.
func ipamList(t *testing.T, dataDir string) map[string]allocation {
	t.Helper()
	out, err := exec.Command(bin("medianetctl"), "--data-dir", dataDir, "ipam", "list", "--json").Output()
	if err != nil {
		t.Fatalf("medianetctl ipam list: %v", err)
	}
	var list []allocation
	if err := json.Unmarshal(out, &list); err != nil {
		t.Fatalf("medianetctl ipam list --json: %v: %s", err, out)
	}
	m := map[string]allocation{}
	for _, a := range list {
		m[a.ContainerID] = a
	}
	return m
}

// logLines returns the lines of medianet's log for verb and container id.
func logLines(t *testing.T, logFile, verb, id string) []string {
	t.Helper()
	b, err := os.ReadFile(logFile)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, " "+verb+" container="+id+" ") {
			out = append(out, l)
		}
	}
	return out
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func mustf(t testing.TB, err error, format string, args ...any) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", fmt.Sprintf(format, args...), err)
	}
}

// podSpec names the i-th pod of a group in namespace "media".
func podSpec(prefix string, i int) containerdtest.Pod {
	return containerdtest.Pod{Name: fmt.Sprintf("%s-%d", prefix, i), Namespace: "media"}
}

// mustRun runs a pod sandbox and returns its ID; failure is fatal.
func mustRun(t *testing.T, n *node, p containerdtest.Pod) string {
	t.Helper()
	id, err := n.RunPod(p)
	mustf(t, err, "run pod %s", p.Name)
	return id
}

var ctxCRI = containerdtest.Ctx
