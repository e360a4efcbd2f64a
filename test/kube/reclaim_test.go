package kube

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/medianet/medianet/internal/kubetest"
	"github.com/medianet/medianet/ipam/kubestore"
)

// ctl runs medianetctl and returns its exit code and output.
func ctl(t *testing.T, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(bins, "medianetctl"), args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("medianetctl %v: %v", args, err)
	}
	return code, out.String()
}

// TestCtlReclaim: `medianetctl ipam reclaim --kubeconfig` against the real
// API server refuses a node's live block without --force, names it in a
// dry run, frees it with --force, and a usage error is exit 2.
func TestCtlReclaim(t *testing.T) {
	srv := kubetest.Start(t)
	conf := map[string]any{
		"type": "medianet-ipam", "subnet": "10.98.0.0/24", "blockSize": 28,
		"node": "dead", "dataDir": t.TempDir(),
		"kubernetes": map[string]any{"kubeconfig": srv.AgentKubeconfig, "requestTimeout": "30s"},
	}
	o := run(t, "ADD", "r-c1", conf)
	if o.Code != 0 || len(o.IPs) != 1 {
		t.Fatalf("ADD: code %d %q", o.Code, o.Msg)
	}
	c, err := kubestore.New(kubestore.Config{Kubeconfig: srv.AdminKubeconfig})
	if err != nil {
		t.Fatal(err)
	}
	blocks := func() []kubestore.Block {
		t.Helper()
		bs, err := c.Blocks(context.Background(), "media-kube", "dead")
		if err != nil {
			t.Fatal(err)
		}
		return bs
	}
	if n := len(blocks()); n != 1 {
		t.Fatalf("node dead holds %d blocks, want 1", n)
	}
	want := blocks()[0].CIDR.String()
	base := []string{"ipam", "reclaim", "--kubeconfig", srv.AdminKubeconfig}

	tests := []struct {
		name     string
		args     []string
		code     int
		out      string
		blocksAf int
	}{
		{"live block refused", []string{"--node", "dead"}, 1, "--force", 1},
		{"dry run names it", []string{"--node", "dead", "--force", "--dry-run"}, 0, "would free media-kube " + want, 1},
		{"node and gone", []string{"--node", "dead", "--gone"}, 2, "exactly one of --node", 1},
		{"two stores", []string{"--node", "dead", "--etcd-endpoints", "http://127.0.0.1:1"}, 2, "two stores", 1},
		{"gone keeps a host without a Node", []string{"--gone"}, 0, "", 1},
		{"forced", []string{"--node", "dead", "--force"}, 0, "freed media-kube " + want, 0},
	}
	for _, tc := range tests {
		code, out := ctl(t, append(base, tc.args...)...)
		if code != tc.code || !strings.Contains(out, tc.out) {
			t.Errorf("%s: exit %d, output %q; want exit %d and %q", tc.name, code, out, tc.code, tc.out)
		}
		if n := len(blocks()); n != tc.blocksAf {
			t.Errorf("%s: node dead holds %d blocks after, want %d", tc.name, n, tc.blocksAf)
		}
	}
}
