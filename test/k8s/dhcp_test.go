package k8s_test

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/medianet/medianet/internal/containerdtest"
	"github.com/medianet/medianet/internal/dhcptest"
	"github.com/medianet/medianet/internal/nstest"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestCRIDHCP: a pod started through containerd's CRI on a medianet
// network in DHCP mode gets its address from the LAN's kea through the
// node agent (medianetd): PodSandboxStatus reports it, kea's lease
// database has it for the pod's eth0 MAC with the pod's name as hostname
// and its namespace/name in the client identifier, and a LAN host pings
// it. Removing the pod sends RELEASE (kea's database shows the lease
// ended) and the agent holds no lease any more.
func TestCRIDHCP(t *testing.T) {
	nstest.SkipUnlessRoot(t)
	containerdtest.SkipUnlessAvailable(t)
	dhcptest.Skip(t, dhcptest.Kea)
	cfg := dhcptest.TestConfig(dhcptest.Kea, 78)
	cfg.Lease, cfg.T1, cfg.T2 = 120*time.Second, 60*time.Second, 100*time.Second
	lan := nstest.NewRootLAN(t, "mnkd")
	srv := dhcptest.Start(t, dhcptest.Kea, lan, cfg)
	peer := lan.AddPeer(t, netip.PrefixFrom(cfg.Gateway, cfg.Subnet.Bits()))
	dataDir := t.TempDir()
	agent := dhcptest.StartAgent(t, bins, dataDir)
	cd := containerdtest.Start(t, containerdtest.Options{})
	cd.InstallPlugins(bin("medianet"), bin("medianet-ipam"), "loopback")
	conf, err := json.Marshal(map[string]any{"cniVersion": "1.0.0", "name": "media", "plugins": []any{map[string]any{
		"type": "medianet", "master": lan.Master, "ipam": map[string]any{"type": "medianet-ipam", "dataDir": dataDir, "dhcp": map[string]any{}}}}})
	must(t, err)
	cd.WriteConflist("10-media.conflist", conf)
	must(t, cd.WaitNetwork(`"name":"media"`))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("agent log:\n%s\nserver log:\n%s", agent.Log(), srv.Log())
		}
	})

	start := time.Now()
	id, err := cd.RunPod(containerdtest.Pod{Name: "janus-0", Namespace: "media"})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("RunPodSandbox with a DHCP lease took %s", time.Since(start).Round(time.Millisecond))
	pd := (&node{Containerd: cd}).pod(t, id)
	kind, addrs := pd.eth0(t)
	if kind != "macvlan" || len(addrs) != 1 || addrs[0] != pd.ip || !cfg.Subnet.Contains(pd.ip) {
		t.Fatalf("pod %s: eth0 %s with %v, status %s; want a macvlan carrying a lease of %s", id, kind, addrs, pd.ip, cfg.Subnet)
	}
	h, err := pd.netns.NewHandle()
	must(t, err)
	link, err := h.LinkByName("eth0")
	h.Close()
	must(t, err)
	mac := link.Attrs().HardwareAddr.String()
	sl, ok, err := srv.LeaseOf(pd.ip)
	if err != nil || !ok || !sl.Active || !strings.EqualFold(sl.MAC, mac) || sl.Hostname != "janus-0" {
		t.Fatalf("kea's lease of %s: %+v (present %v, %v); want active for eth0's MAC %s, hostname janus-0", pd.ip, sl, ok, err, mac)
	}
	if !strings.Contains(strings.ReplaceAll(sl.ClientID, ":", ""), fmt.Sprintf("%x", "media/janus-0")) {
		t.Errorf("kea's client id %q does not name the pod media/janus-0", sl.ClientID)
	}
	if err := peer.Ping(pd.ip, 3); err != nil {
		t.Errorf("LAN host -> pod %s: %v", pd.ip, err)
	}

	ctx, cancel := ctxCRI()
	defer cancel()
	_, err = cd.Runtime.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: id})
	must(t, err)
	_, err = cd.Runtime.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: id})
	must(t, err)
	if err := srv.WaitLease(pd.ip, 5*time.Second, func(l dhcptest.Lease, ok bool) bool { return !ok || !l.Active }); err != nil {
		t.Errorf("pod removal did not release %s in kea's database: %v", pd.ip, err)
	}
	out, err := exec.Command(bin("medianetctl"), "--data-dir", dataDir, "ipam", "list", "--json").Output()
	if err != nil || strings.Contains(string(out), pd.ip.String()) {
		t.Errorf("medianetctl ipam list after the pod's removal: %v: %s", err, out)
	}
}
