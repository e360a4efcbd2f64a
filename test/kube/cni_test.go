// Package kube tests medianet-ipam with ipam.kubernetes end to end: the
// real plugin binaries (medianet-ipam forwarding to medianet-ipam-kube)
// against a real kube-apiserver (internal/kubetest).
package kube

import (
	"bytes"
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/medianet/medianet/internal/cnitest"
	"github.com/medianet/medianet/internal/kubetest"
	"github.com/medianet/medianet/ipam/kubestore"
)

// bins holds medianet-ipam and medianet-ipam-kube: $MEDIANET_BIN, or
// built by TestMain.
var bins string

func TestMain(m *testing.M) {
	os.Exit(cnitest.Main(m, &bins, "medianet-ipam", "medianet-ipam-kube", "medianetctl"))
}

type outcome struct {
	IPs []struct {
		Address string `json:"address"`
	} `json:"ips"`
	Code uint   `json:"code"`
	Msg  string `json:"msg"`
}

func run(t *testing.T, command, cid string, ipamConf map[string]any) outcome {
	t.Helper()
	conf, _ := json.Marshal(map[string]any{"cniVersion": "1.1.0", "name": "media-kube", "type": "medianet-ipam", "ipam": ipamConf})
	cmd := exec.Command(filepath.Join(bins, "medianet-ipam"))
	cmd.Env = []string{
		"CNI_COMMAND=" + command, "CNI_CONTAINERID=" + cid, "CNI_IFNAME=net1",
		"CNI_NETNS=/var/run/netns/medianet-kube-none", "CNI_PATH=/nonexistent", "PATH=/usr/bin:/bin",
	}
	cmd.Stdin = bytes.NewReader(conf)
	var out bytes.Buffer
	cmd.Stdout = &out
	_ = cmd.Run() // judged from stdout: a result or a CNI error
	var o outcome
	if out.Len() > 0 {
		if err := json.Unmarshal(out.Bytes(), &o); err != nil {
			t.Fatalf("%s %s: stdout is not JSON: %v: %q", command, cid, err, out.String())
		}
	}
	return o
}

// TestPluginClaimsInAPI: two nodes' ADDs through medianet-ipam get
// addresses from blocks claimed as IPAMBlocks, one node's never in the
// other's; a bad ipam.sticky is refused with code 7.
func TestPluginClaimsInAPI(t *testing.T) {
	srv := kubetest.Start(t)
	conf := func(node string) map[string]any {
		return map[string]any{
			"type": "medianet-ipam", "subnet": "10.99.0.0/24", "blockSize": 28,
			"node": node, "dataDir": filepath.Join(t.TempDir(), node),
			"kubernetes": map[string]any{"kubeconfig": srv.AgentKubeconfig, "requestTimeout": "30s"},
		}
	}
	nodes := map[string]map[string]any{"a": conf("a"), "b": conf("b")}
	got := map[string][]netip.Addr{}
	for name, c := range nodes {
		for _, cid := range []string{"c1", "c2"} {
			o := run(t, "ADD", name+"-"+cid, c)
			if o.Code != 0 || len(o.IPs) != 1 {
				t.Fatalf("ADD %s on node %s: code %d %q", cid, name, o.Code, o.Msg)
			}
			got[name] = append(got[name], netip.MustParsePrefix(o.IPs[0].Address).Addr())
		}
	}
	c, err := kubestore.New(kubestore.Config{Kubeconfig: srv.AdminKubeconfig})
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := c.Blocks(context.Background(), "media-kube", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(blocks) != 2 {
		t.Fatalf("IPAMBlocks: %+v, want one per node", blocks)
	}
	for _, b := range blocks {
		for node, addrs := range got {
			for _, a := range addrs {
				if b.CIDR.Contains(a) != (b.Node == node) {
					t.Errorf("address %s of node %s vs block %s of node %s", a, node, b.CIDR, b.Node)
				}
			}
		}
	}
	if o := run(t, "DEL", "a-c1", nodes["a"]); o.Code != 0 {
		t.Errorf("DEL: code %d %q", o.Code, o.Msg)
	}
	sticky := conf("c")
	sticky["sticky"] = "30"
	if o := run(t, "ADD", "c-c1", sticky); o.Code != 7 || !strings.Contains(o.Msg, "ipam.sticky") {
		t.Errorf("ADD with a bad ipam.sticky and kubernetes: code %d %q, want 7 naming ipam.sticky", o.Code, o.Msg)
	}
}
