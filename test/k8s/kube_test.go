package k8s_test

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/medianet/medianet/agent"
	"github.com/medianet/medianet/internal/kubetest"
	"github.com/medianet/medianet/ipam/kubestore"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestCRIKubernetesSource: pods started by containerd's CRI on a network
// with ipam.kubernetes get addresses from a block node-a claimed as an
// IPAMBlock in a real kube-apiserver, through the kubeconfig the node
// agent writes from its ServiceAccount; the LAN reaches them; a removed
// pod's address is freed while the block stays node-a's.
func TestCRIKubernetesSource(t *testing.T) {
	srv := kubetest.Start(t)
	u, err := url.Parse(srv.URL)
	must(t, err)
	sa := agent.ServiceAccount{Dir: filepath.Join(t.TempDir(), "serviceaccount"), Host: u.Hostname(), Port: u.Port()}
	must(t, os.MkdirAll(sa.Dir, 0o755))
	ca, err := os.ReadFile(srv.CAFile())
	must(t, err)
	must(t, os.WriteFile(filepath.Join(sa.Dir, "ca.crt"), ca, 0o600))
	must(t, os.WriteFile(filepath.Join(sa.Dir, "token"), []byte(kubetest.AgentToken), 0o600))
	kubeconfig := filepath.Join(t.TempDir(), "kube", "kubeconfig")
	_, err = agent.WriteKubeconfig(sa, kubeconfig)
	must(t, err)

	dataDir := t.TempDir()
	n := newNode(t, map[string]any{"ipam": map[string]any{
		"type": "medianet-ipam", "subnet": subnet.String(), "gateway": gateway.String(),
		"blockSize": 28, "node": "node-a", "dataDir": dataDir,
		"kubernetes": map[string]any{"kubeconfig": kubeconfig},
	}})
	a, b := n.runPod(t, "kube-a"), n.runPod(t, "kube-b")
	if a.ip == b.ip {
		t.Fatalf("both pods got %s", a.ip)
	}
	c, err := kubestore.New(kubestore.Config{Kubeconfig: srv.AdminKubeconfig})
	must(t, err)
	blocks, err := c.Blocks(context.Background(), "media", "")
	must(t, err)
	if len(blocks) != 1 || blocks[0].Node != "node-a" || !blocks[0].CIDR.Contains(a.ip) || !blocks[0].CIDR.Contains(b.ip) {
		t.Fatalf("IPAMBlocks %+v; want one of node-a holding %s and %s", blocks, a.ip, b.ip)
	}
	for _, p := range []pod{a, b} {
		if err := n.peer.Ping(p.ip, 3); err != nil {
			t.Errorf("LAN host -> pod %s (%s): %v", p.id, p.ip, err)
		}
	}
	ctx, cancel := ctxCRI()
	defer cancel()
	_, err = n.Runtime.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: a.id})
	must(t, err)
	_, err = n.Runtime.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: a.id})
	must(t, err)
	if al, ok := ipamList(t, dataDir)[a.id]; ok {
		t.Errorf("after removing pod %s its allocation remains: %+v", a.id, al)
	}
	if _, ok := ipamList(t, dataDir)[b.id]; !ok {
		t.Errorf("pod %s's allocation is gone with the other pod", b.id)
	}
	if blocks, err := c.Blocks(context.Background(), "media", "node-a"); err != nil || len(blocks) != 1 {
		t.Errorf("node-a's blocks after one pod left: %+v, %v; want the block kept (one pod still uses it)", blocks, err)
	}
}
