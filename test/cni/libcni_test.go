package cni_test

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/medianet/medianet/internal/nstest"
)

// TestLibCNI drives medianet through libcni as kubelet's runtimes
// (containerd, CRI-O) do: AddNetworkList with the ips and mac capabilities,
// CheckNetworkList, GetStatusNetworkList, GCNetworkList, DelNetworkList.
// The master is a veth end in the root namespace made by the test.
func TestLibCNI(t *testing.T) {
	nstest.SkipUnlessRoot(t)
	lan := nstest.NewRootLAN(t, "mncl")
	dataDir := t.TempDir()
	conflist := fmt.Sprintf(`{"cniVersion":"1.1.0","name":"media","plugins":[{"type":"medianet","master":%q,
		"capabilities":{"ips":true,"mac":true},
		"ipam":{"type":"medianet-ipam","subnet":"10.97.0.0/24","gateway":"10.97.0.254","node":"node-a","dataDir":%q}}]}`,
		lan.Master, dataDir)
	list, err := libcni.ConfListFromBytes([]byte(conflist))
	must(t, err)
	cninet := libcni.NewCNIConfigWithCacheDir([]string{bins, refPlugins}, t.TempDir(), nil)
	ctx := context.Background()
	must(t, cninet.GetStatusNetworkList(ctx, list))

	rts := make([]*libcni.RuntimeConf, 2)
	for i := range rts {
		ctr := nstest.NewNS(t, "mncc")
		rts[i] = &libcni.RuntimeConf{ContainerID: fmt.Sprintf("libcni-%d", i), NetNS: ctr.Path, IfName: "eth0"}
	}
	rts[0].CapabilityArgs = map[string]any{"ips": []string{"10.97.0.42/24"}, "mac": "02:00:0a:61:00:2a"}
	for _, rt := range rts {
		res, err := cninet.AddNetworkList(ctx, list, rt)
		if err != nil {
			t.Fatalf("AddNetworkList %s: %v", rt.ContainerID, err)
		}
		r, err := current.NewResultFromResult(res)
		must(t, err)
		if len(r.IPs) != 1 {
			t.Fatalf("result %s: %v", rt.ContainerID, r)
		}
		if rt.CapabilityArgs != nil {
			if got := r.IPs[0].Address.IP.String(); got != "10.97.0.42" {
				t.Errorf("ips capability: got %s, want 10.97.0.42", got)
			}
			if got := r.Interfaces[0].Mac; !strings.EqualFold(got, "02:00:0a:61:00:2a") {
				t.Errorf("mac capability: got %s, want 02:00:0a:61:00:2a", got)
			}
		}
		must(t, cninet.CheckNetworkList(ctx, list, rt))
	}
	// GC keeping only the first attachment releases the second's address.
	must(t, cninet.GCNetworkList(ctx, list, &libcni.GCArgs{ValidAttachments: []types.GCAttachment{{ContainerID: rts[0].ContainerID, IfName: "eth0"}}}))
	as := allocations(t, dataDir, "media")
	if len(as) != 1 || as[0].ContainerID != rts[0].ContainerID || as[0].IPs[0] != netip.MustParseAddr("10.97.0.42") {
		t.Errorf("allocations after GC = %+v, want only %s with 10.97.0.42", as, rts[0].ContainerID)
	}
	for _, rt := range rts {
		if err := cninet.DelNetworkList(ctx, list, rt); err != nil {
			t.Errorf("DelNetworkList %s: %v", rt.ContainerID, err)
		}
		if err := cninet.DelNetworkList(ctx, list, rt); err != nil {
			t.Errorf("second DelNetworkList %s: %v", rt.ContainerID, err)
		}
	}
	if as := allocations(t, dataDir, "media"); len(as) != 0 {
		t.Errorf("allocations after DEL = %+v, want none", as)
	}
}
