package kube

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/medianet/medianet/agent"
	"github.com/medianet/medianet/internal/kubetest"
	"github.com/medianet/medianet/ipam/kubestore"
)

// TestAgentSyncsKubeNetworks: the node agent's sync (medianetd
// --cni-conf-dir) publishes the usage of a network with ipam.kubernetes
// that ADDs served from a held block never report to the API server, as
// GC would on a runtime that sends it.
func TestAgentSyncsKubeNetworks(t *testing.T) {
	srv := kubetest.Start(t)
	dataDir := t.TempDir()
	ipamConf := map[string]any{
		"type": "medianet-ipam", "subnet": "10.96.0.0/24", "blockSize": 28,
		"node": "n1", "dataDir": dataDir,
		"kubernetes": map[string]any{"kubeconfig": srv.AgentKubeconfig, "requestTimeout": "30s"},
	}
	for _, cid := range []string{"s-c1", "s-c2", "s-c3"} {
		if o := run(t, "ADD", cid, ipamConf); o.Code != 0 {
			t.Fatalf("ADD %s: code %d %q", cid, o.Code, o.Msg)
		}
	}
	c, err := kubestore.New(kubestore.Config{Kubeconfig: srv.AdminKubeconfig})
	if err != nil {
		t.Fatal(err)
	}
	inUse := func() int {
		t.Helper()
		bs, err := c.Blocks(context.Background(), "media-kube", "n1")
		if err != nil || len(bs) != 1 {
			t.Fatalf("node n1's blocks: %+v, %v; want one", bs, err)
		}
		return bs[0].InUse
	}
	if n := inUse(); n == 3 {
		t.Fatalf("inUse is 3 before any sync: the test cannot tell whether the agent published it")
	}
	confDir := t.TempDir()
	conf, _ := json.Marshal(map[string]any{"cniVersion": "1.1.0", "name": "media-kube", "plugins": []any{
		map[string]any{"type": "medianet-ipam", "ipam": ipamConf}}})
	if err := os.WriteFile(filepath.Join(confDir, "10-media-kube.conflist"), conf, 0o644); err != nil {
		t.Fatal(err)
	}
	s := agent.NewSyncer(agent.ConfDirs{Dirs: []string{confDir}, DataDir: dataDir, Node: "n1"}, nil)
	s.SyncAll(context.Background())
	if n := inUse(); n != 3 {
		t.Errorf("inUse after the agent's sync: %d, want 3", n)
	}
}
