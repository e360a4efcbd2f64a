package ctl

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/medianet/medianet/internal/ipamtest"
	"github.com/medianet/medianet/ipam"
	"github.com/medianet/medianet/ipam/boltstore"
)

func run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errw bytes.Buffer
	code := Run(args, &out, &errw)
	return out.String(), errw.String(), code
}

func seed(t *testing.T, dir string, network string, cids ...string) {
	t.Helper()
	st, err := boltstore.Open(context.Background(), dir, boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a := ipamtest.Allocator(t, ipamtest.Config(network, "10.30.0.0/24", "fd00:30::/64"), st)
	for _, c := range cids {
		for _, ifn := range []string{"eth0", "net1"} {
			if _, err := a.Allocate(context.Background(), ipam.Request{ContainerID: c, IfName: ifn}); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestListReleaseGC(t *testing.T) {
	dir := t.TempDir()
	seed(t, dir, "media", "c1", "c2", "c3")
	seed(t, dir, "other", "c1")
	out, _, code := run(t, "--data-dir", dir, "ipam", "list", "--network", "media", "--json")
	var entries []listEntry
	if code != 0 || json.Unmarshal([]byte(out), &entries) != nil || len(entries) != 6 {
		t.Fatalf("list --json: code %d, %d entries from %q", code, len(entries), out)
	}
	if len(entries[0].IPs) != 2 {
		t.Errorf("entry %+v: want two addresses (dual stack)", entries[0])
	}
	out, _, code = run(t, "--data-dir", dir, "ipam", "release", "--network", "media", "--container", "c1", "--ifname", "net1")
	if code != 0 || !strings.Contains(out, "released c1/net1 on media") {
		t.Errorf("release: code %d, out %q", code, out)
	}
	_, errOut, code := run(t, "--data-dir", dir, "ipam", "release", "--network", "media", "--container", "nope")
	if code != ExitError || !strings.Contains(errOut, `no allocation for container "nope"`) {
		t.Errorf("release of unknown: code %d, stderr %q", code, errOut)
	}
	out, _, code = run(t, "--data-dir", dir, "ipam", "gc", "--network", "media", "--valid", "c1:eth0,c2:net1")
	if code != 0 || strings.Count(out, "released") != 3 {
		t.Errorf("gc: code %d, out %q, want 3 released (c2/eth0, c3/eth0, c3/net1)", code, out)
	}
	out, _, _ = run(t, "--data-dir", dir, "ipam", "list")
	for _, want := range []string{"media    c1", "media    c2", "other    c1"} {
		if !strings.Contains(out, want) {
			t.Errorf("list after gc lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "c3") || strings.Count(out, "\n") != 5 {
		t.Errorf("list after gc, want 4 rows:\n%s", out)
	}
	if out, errOut, code := run(t, "--data-dir", dir, "ipam", "check"); code != 0 {
		t.Errorf("check: %d %s %s", code, out, errOut)
	}
}

func TestVerify(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	a := write("a.conf", `{"cniVersion":"1.1.0","name":"media","type":"medianet","ipam":{"type":"medianet-ipam","subnet":"10.40.0.0/24","node":"node-a","nodeRanges":{"node-a":["10.40.0.0/27"]}}}`)
	b := write("b.conflist", `{"cniVersion":"1.1.0","name":"media","plugins":[{"type":"medianet","ipam":{"type":"medianet-ipam","subnet":"10.40.0.0/24","node":"node-b","nodeRanges":{"node-b":["10.40.0.32/27"]}}}]}`)
	bad := write("c.conf", `{"cniVersion":"1.1.0","name":"media","type":"medianet","ipam":{"type":"medianet-ipam","subnet":"10.40.0.0/24","nodeRanges":{"node-c":["10.40.0.16/28"]}}}`)
	other := write("d.conf", `{"cniVersion":"1.1.0","name":"elsewhere","type":"medianet","ipam":{"type":"medianet-ipam","subnet":"10.40.0.0/24","nodeRanges":{"node-d":["10.40.0.0/24"]}}}`)
	if out, errOut, code := run(t, "ipam", "verify", a, b, other); code != 0 || !strings.Contains(out, "no overlap") {
		t.Errorf("verify of disjoint ranges: code %d, %q %q", code, out, errOut)
	}
	_, errOut, code := run(t, "ipam", "verify", a, b, bad)
	if code != ExitError || !strings.Contains(errOut, "10.40.0.0/27") || !strings.Contains(errOut, "10.40.0.16/28") || !strings.Contains(errOut, "c.conf") {
		t.Errorf("verify of overlapping ranges: code %d, stderr %q, want both ranges and the file named", code, errOut)
	}
	broken := write("e.conf", `{"name":"media","ipam":{"subnet":"10.40.0.0/24","gateway":"10.9.0.1"}}`)
	if _, errOut, code := run(t, "ipam", "verify", broken); code != ExitError || !strings.Contains(errOut, "ipam.gateway") {
		t.Errorf("verify of a broken file: code %d, stderr %q", code, errOut)
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{{}, {"ipam"}, {"ipam", "frob"}, {"ipam", "release", "--network", "m"}, {"ipam", "verify"}} {
		if _, _, code := run(t, args...); code != ExitUsage {
			t.Errorf("medianetctl %v: exit %d, want %d", args, code, ExitUsage)
		}
	}
	if _, errOut, code := run(t, "--data-dir", filepath.Join(t.TempDir(), "none"), "ipam", "list"); code != ExitError || !strings.Contains(errOut, "wrong directory") {
		t.Errorf("list with missing dir: %d %q", code, errOut)
	}
}

// TestReleaseOfAHoldExpiresIt: releasing a sticky hold by hand ends it
// (heldUntil now) rather than freeing its address in the store: on an etcd
// network its record may let another node move it, so only the sync frees
// it, through etcd. A static network's next allocation frees it.
func TestReleaseOfAHoldExpiresIt(t *testing.T) {
	dir := t.TempDir()
	st, err := boltstore.Open(context.Background(), dir, boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := ipamtest.Config("media", "10.31.0.0/24")
	cfg.Sticky = time.Hour
	a := ipamtest.Allocator(t, cfg, st)
	ctx := context.Background()
	got, err := a.Allocate(ctx, ipam.Request{ContainerID: "c1", IfName: "eth0", Workload: "media/jvb-0"})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.Release(ctx, "c1", "eth0"); err != nil {
		t.Fatal(err)
	}
	st.Close()
	out, errOut, code := run(t, "--data-dir", dir, "ipam", "release", "--network", "media", "--container", "sticky:media/jvb-0")
	if code != 0 || !strings.Contains(out, "expired sticky:media/jvb-0/eth0") {
		t.Fatalf("release of a hold: code %d, out %q, stderr %q", code, out, errOut)
	}
	st, err = boltstore.Open(ctx, dir, boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	as, err := ipam.List(ctx, st, "media")
	if err != nil || len(as) != 1 || !as[0].IsHold() || time.Until(as[0].HeldUntil) > time.Minute {
		t.Fatalf("after release of the hold: %+v, %v; want it kept, expired", as, err)
	}
	a = ipamtest.Allocator(t, cfg, st)
	if _, err := a.Allocate(ctx, ipam.Request{ContainerID: "c2", IfName: "eth0", IPs: got.IPs}); err != nil {
		t.Errorf("the expired hold's address for another container: %v", err)
	}
}
