package kube

import (
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/medianet/medianet/internal/kubetest"
	"github.com/medianet/medianet/ipam"
	"github.com/medianet/medianet/ipam/kubestore"
)

// ctlBlock is one entry of `ipam list --kubeconfig --json`.
type ctlBlock struct {
	Network string `json:"network"`
	Node    string `json:"node"`
	Block   string `json:"block"`
	InUse   int    `json:"inUse"`
	Object  string `json:"object"`
}

// ctlCheck is `ipam check --json`.
type ctlCheck struct {
	Consistent bool `json:"consistent"`
	Findings   []struct {
		Kind  string `json:"kind"`
		Block string `json:"block"`
		Addr  string `json:"addr"`
	} `json:"findings"`
}

// kinds returns "kind block" of each finding, sorted.
func (c ctlCheck) kinds() []string {
	var out []string
	for _, f := range c.Findings {
		out = append(out, f.Kind+" "+f.Block)
	}
	slices.Sort(out)
	return out
}

// TestCtlKube: medianetctl's list, sync and check against the real API
// server, as they work against etcd. list --kubeconfig shows every
// node's claims; sync publishes the node's usage and adopts a claim the
// store lacks; check --kubeconfig finds, without writing, what the API
// says and the store does not know yet: a block deleted under the node
// (unclaimed-block), then claimed by another node (lost-block, and the
// node's attachments in it), a claim of this node the store lacks
// (unrecorded-claim). Exit codes as with etcd: 0, 3 on findings, 1 on
// errors, 2 on usage.
func TestCtlKube(t *testing.T) {
	srv := kubetest.Start(t)
	dataDir := t.TempDir()
	conf := map[string]any{
		"type": "medianet-ipam", "subnet": "10.93.0.0/24", "blockSize": 28,
		"node": "n1", "dataDir": dataDir,
		"kubernetes": map[string]any{"kubeconfig": srv.AgentKubeconfig, "requestTimeout": "30s"},
	}
	var addrs []string
	for _, cid := range []string{"k-c1", "k-c2"} {
		o := run(t, "ADD", cid, conf)
		if o.Code != 0 || len(o.IPs) != 1 {
			t.Fatalf("ADD %s: code %d %q", cid, o.Code, o.Msg)
		}
		addrs = append(addrs, netip.MustParsePrefix(o.IPs[0].Address).Addr().String())
	}
	confFile := filepath.Join(t.TempDir(), "10-media-kube.conflist")
	raw, _ := json.Marshal(map[string]any{"cniVersion": "1.1.0", "name": "media-kube", "plugins": []any{
		map[string]any{"type": "medianet-ipam", "ipam": conf}}})
	if err := os.WriteFile(confFile, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	admin := srv.AdminKubeconfig
	dd := []string{"--data-dir", dataDir}

	list := func() []ctlBlock {
		t.Helper()
		code, out := ctl(t, "ipam", "list", "--kubeconfig", admin, "--network", "media-kube", "--json")
		var bs []ctlBlock
		if code != 0 || json.Unmarshal([]byte(out), &bs) != nil {
			t.Fatalf("ipam list --kubeconfig: exit %d: %s", code, out)
		}
		return bs
	}
	bs := list()
	if len(bs) != 1 || bs[0].Node != "n1" || bs[0].InUse != 0 {
		t.Fatalf("list before a sync: %+v; want n1's one block, usage not yet published", bs)
	}
	held := netip.MustParsePrefix(bs[0].Block)
	if code, out := ctl(t, "ipam", "list", "--kubeconfig", admin); code != 0 || !strings.Contains(out, "NETWORK") || !strings.Contains(out, bs[0].Object) {
		t.Errorf("ipam list --kubeconfig (table): exit %d: %s", code, out)
	}

	code, out := ctl(t, append(dd, "ipam", "sync", "--kubeconfig", admin, confFile)...)
	if code != 0 || !strings.Contains(out, "media-kube: 1 marked") {
		t.Errorf("ipam sync: exit %d: %s; want media-kube: 1 marked", code, out)
	}
	if bs := list(); len(bs) != 1 || bs[0].InUse != 2 {
		t.Errorf("list after the sync: %+v; want inUse 2", bs)
	}

	check := func(args ...string) (int, ctlCheck) {
		t.Helper()
		code, out := ctl(t, append(append(dd, "ipam", "check", "--json"), args...)...)
		var c ctlCheck
		if (code == 0 || code == 3) && json.Unmarshal([]byte(out), &c) != nil {
			t.Fatalf("ipam check %v: exit %d, not JSON: %s", args, code, out)
		}
		if code != 0 && code != 3 {
			t.Fatalf("ipam check %v: exit %d: %s", args, code, out)
		}
		return code, c
	}
	if code, c := check("--kubeconfig", admin, confFile); code != 0 || !c.Consistent || len(c.Findings) != 0 {
		t.Errorf("check of a store in line with the API: exit %d, %+v; want 0 and no findings", code, c)
	}

	api, err := kubestore.New(kubestore.Config{Kubeconfig: admin})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := api.Reclaim(ctx, "media-kube", "n1", true, false); err != nil {
		t.Fatal(err)
	}
	// The record the plugin wrote names the network: no CONFIG needed.
	if code, c := check("--kubeconfig", admin); code != 3 || !slices.Equal(c.kinds(), []string{"unclaimed-block " + held.String()}) {
		t.Errorf("check after n1's block object was deleted: exit %d, %v; want 3 and unclaimed-block %s", code, c.kinds(), held)
	}
	net := kubestore.NetworkFromConfig(&ipam.Config{Network: "media-kube", BlockSize: 28,
		Subnets: []ipam.Subnet{{Prefix: netip.MustParsePrefix("10.93.0.0/24")}}})
	if err := api.ClaimBlock(ctx, net, "n2", "", held); err != nil {
		t.Fatal(err)
	}
	code, c := check("--kubeconfig", admin, confFile)
	want := []string{"in-lost-block " + held.String(), "in-lost-block " + held.String(), "lost-block " + held.String()}
	if code != 3 || !slices.Equal(c.kinds(), want) {
		t.Errorf("check once n2 claimed n1's block: exit %d, %v; want 3 and %v", code, c.kinds(), want)
	}
	for _, f := range c.Findings {
		if f.Kind == ipam.FindingInLostBlock && !slices.Contains(addrs, f.Addr) {
			t.Errorf("in-lost-block names %s; n1's attachments are %v", f.Addr, addrs)
		}
	}
	if code, c := check(); code != 0 {
		t.Errorf("check without --kubeconfig: exit %d, %v; want 0 (the store alone does not know yet)", code, c.kinds())
	}

	other := netip.MustParsePrefix("10.93.0.128/28")
	if other == held {
		other = netip.MustParsePrefix("10.93.0.144/28")
	}
	if err := api.ClaimBlock(ctx, net, "n1", "", other); err != nil {
		t.Fatal(err)
	}
	if code, c := check("--kubeconfig", admin); code != 3 || !slices.Contains(c.kinds(), "unrecorded-claim "+other.String()) {
		t.Errorf("check with a claim of n1's the store lacks: exit %d, %v; want unrecorded-claim %s", code, c.kinds(), other)
	}
	code, out = ctl(t, append(dd, "ipam", "sync", "--kubeconfig", admin, confFile)...)
	if code != 0 || !strings.Contains(out, "1 lost, 1 adopted") {
		t.Errorf("ipam sync: exit %d: %s; want 1 lost, 1 adopted", code, out)
	}
	// Recorded now: the store's own check reports the lost block, and the
	// comparison with the API adds nothing.
	want = []string{"in-lost-block " + held.String(), "in-lost-block " + held.String(), "lost-block " + held.String()}
	for _, args := range [][]string{nil, {"--kubeconfig", admin}} {
		if code, c := check(args...); code != 3 || !slices.Equal(c.kinds(), want) {
			t.Errorf("check %v after the sync: exit %d, %v; want 3 and %v", args, code, c.kinds(), want)
		}
	}

	errs := []struct {
		name string
		args []string
		code int
		out  string
	}{
		{"list, unreadable kubeconfig", []string{"ipam", "list", "--kubeconfig", "/nonexistent/kubeconfig"}, 1, "/nonexistent/kubeconfig"},
		{"sync without CONFIG", append(dd, "ipam", "sync", "--kubeconfig", admin), 2, "usage"},
		{"check, no kubernetes network known", []string{"--data-dir", t.TempDir(), "ipam", "check", "--kubeconfig", admin}, 1, "no network with ipam.kubernetes"},
	}
	for _, tc := range errs {
		if code, out := ctl(t, tc.args...); code != tc.code || !strings.Contains(out, tc.out) {
			t.Errorf("%s: exit %d: %s; want exit %d and %q", tc.name, code, out, tc.code, tc.out)
		}
	}
}
