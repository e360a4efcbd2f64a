package kube

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/medianet/medianet/agent"
	"github.com/medianet/medianet/internal/kubetest"
	"github.com/medianet/medianet/ipam/kubestore"
)

// TestAgentSyncsRecordedKubeNetwork: a network with ipam.kubernetes that
// no CNI configuration file names (a Multus NetworkAttachmentDefinition's:
// the runtime passes its configuration on stdin only) is recorded by the
// plugin in the data directory at ADD, so the node agent, whose conf dir
// is empty, publishes its usage and, once its pods are gone, gives its
// idle block back, as it does for etcd networks.
func TestAgentSyncsRecordedKubeNetwork(t *testing.T) {
	srv := kubetest.Start(t)
	dataDir := t.TempDir()
	conf := map[string]any{
		"type": "medianet-ipam", "subnet": "10.94.0.0/24", "blockSize": 28,
		"node": "n1", "dataDir": dataDir,
		"kubernetes": map[string]any{"kubeconfig": srv.AgentKubeconfig, "requestTimeout": "30s", "idleRelease": "1ms"},
	}
	cids := []string{"nad-c1", "nad-c2", "nad-c3"}
	for _, cid := range cids {
		if o := run(t, "ADD", cid, conf); o.Code != 0 {
			t.Fatalf("ADD %s: code %d %q", cid, o.Code, o.Msg)
		}
	}
	if _, err := os.Stat(filepath.Join(dataDir, "networks", "media-kube.json")); err != nil {
		t.Fatalf("the plugin's record of the network: %v", err)
	}
	c, err := kubestore.New(kubestore.Config{Kubeconfig: srv.AdminKubeconfig})
	if err != nil {
		t.Fatal(err)
	}
	blocks := func() []kubestore.Block {
		t.Helper()
		bs, err := c.Blocks(context.Background(), "media-kube", "n1")
		if err != nil {
			t.Fatal(err)
		}
		return bs
	}
	if bs := blocks(); len(bs) != 1 || bs[0].InUse == len(cids) {
		t.Fatalf("before any sync: blocks %+v; want one, its usage not yet published (else the test cannot tell)", bs)
	}
	// The agent's conf dir names no network: all it knows is the record.
	s := agent.NewSyncer(agent.ConfDirs{Dirs: []string{t.TempDir()}, DataDir: dataDir, Node: "n1"}, nil)
	s.SyncAll(context.Background())
	if bs := blocks(); len(bs) != 1 || bs[0].InUse != len(cids) {
		t.Fatalf("after the agent's sync: blocks %+v; want one with inUse %d", bs, len(cids))
	}
	for _, cid := range cids {
		if o := run(t, "DEL", cid, conf); o.Code != 0 {
			t.Fatalf("DEL %s: code %d %q", cid, o.Code, o.Msg)
		}
	}
	s.SyncAll(context.Background()) // marks the block empty: its idle time starts
	if bs := blocks(); len(bs) != 1 || !bs[0].Empty() {
		t.Fatalf("after the DELs and a sync: blocks %+v; want one marked empty", bs)
	}
	// Idle for more than idleRelease (1ms after emptySince, which is
	// kept to the second): given back by the next sync, or the one after.
	for i := 0; i < 3 && len(blocks()) != 0; i++ {
		s.SyncAll(context.Background())
	}
	if bs := blocks(); len(bs) != 0 {
		t.Errorf("after the idle time: blocks %+v; want the idle block given back", bs)
	}
}
