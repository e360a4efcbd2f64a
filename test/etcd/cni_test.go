package etcd

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/medianet/medianet/internal/cnitest"

	"github.com/medianet/medianet/internal/etcdtest"
	"github.com/medianet/medianet/ipam/etcdstore"
)

// bins holds medianet-ipam, medianet-ipam-etcd (which medianet-ipam runs
// for ipam.etcd networks), medianetctl and medianetd (the node agent):
// $MEDIANET_BIN, or built by TestMain.
var bins string

func TestMain(m *testing.M) {
	os.Exit(cnitest.Main(m, &bins, "medianet-ipam", "medianet-ipam-etcd", "medianetctl", "medianetd"))
}

func binary(name string) string { return filepath.Join(bins, name) }

type cniOutcome struct {
	IPs []struct {
		Address string `json:"address"`
	} `json:"ips"`
	Code uint   `json:"code"`
	Msg  string `json:"msg"`
}

// cniNode is one simulated node running the real plugin binary.
type cniNode struct {
	name, dir string
	etcd      map[string]any
	blockSize int
}

func (n cniNode) conf() []byte {
	b, _ := json.Marshal(map[string]any{
		"cniVersion": "1.1.0",
		"name":       "media-cni",
		"type":       "medianet-ipam",
		"ipam": map[string]any{
			"type":      "medianet-ipam",
			"subnet":    "10.77.0.0/24",
			"blockSize": n.blockSize,
			"node":      n.name,
			"dataDir":   n.dir,
			"etcd":      n.etcd,
		},
	})
	return b
}

func (n cniNode) run(t *testing.T, command, cid string) cniOutcome {
	t.Helper()
	return n.runConf(t, command, cid, n.conf())
}

func (n cniNode) runConf(t *testing.T, command, cid string, conf []byte) cniOutcome {
	t.Helper()
	cmd := exec.Command(binary("medianet-ipam"))
	cmd.Env = []string{
		"CNI_COMMAND=" + command, "CNI_CONTAINERID=" + cid, "CNI_IFNAME=net1",
		"CNI_NETNS=/var/run/netns/medianet-etcd-none", "CNI_PATH=/nonexistent", "PATH=/usr/bin:/bin",
	}
	cmd.Stdin = bytes.NewReader(conf)
	var out bytes.Buffer
	cmd.Stdout = &out
	_ = cmd.Run() // the outcome is judged from stdout: a result or a CNI error
	var o cniOutcome
	if out.Len() > 0 {
		if err := json.Unmarshal(out.Bytes(), &o); err != nil {
			t.Fatalf("%s %s on %s: stdout is not JSON: %v: %q", command, cid, n.name, err, out.String())
		}
	}
	return o
}

func (n cniNode) add(t *testing.T, cid string) netip.Prefix {
	t.Helper()
	o := n.run(t, "ADD", cid)
	if o.Code != 0 || len(o.IPs) != 1 {
		t.Fatalf("ADD %s on %s: code %d %q, ips %v", cid, n.name, o.Code, o.Msg, o.IPs)
	}
	return netip.MustParsePrefix(o.IPs[0].Address)
}

func etcdKeys(srv *etcdtest.Server) map[string]any {
	m := map[string]any{"endpoints": srv.Endpoints(), "prefix": "/medianet-cni", "requestTimeout": "1s"}
	if srv.TLS != nil {
		m["caFile"], m["certFile"], m["keyFile"] = srv.TLS.CAFile, srv.TLS.ClientCert, srv.TLS.ClientKey
	}
	if srv.User != "" {
		m["username"], m["password"] = srv.User, srv.Password
	}
	return m
}

// TestPluginClaimsBlocksInEtcd drives medianet-ipam with ipam.etcd set, as
// kubelet would: two nodes get addresses from different blocks, a node
// whose blockSize differs (a blockSize change under way) gets a block of
// its size overlapping neither, and with etcd stopped a node keeps allocating from its held block and
// gets code 11 naming the endpoint only when it needs a new one; an
// address released meanwhile is handed out again without etcd.
func TestPluginClaimsBlocksInEtcd(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts etcdtest.Options
	}{
		{"plain", etcdtest.Options{}},
		{"tls-auth", etcdtest.Options{TLS: true, Auth: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			etcdtest.SkipUnlessAvailable(t)
			srv := etcdtest.Start(t, tc.opts)
			ek := etcdKeys(srv)
			a := cniNode{name: "node-a", dir: t.TempDir(), etcd: ek, blockSize: 28}
			b := cniNode{name: "node-b", dir: t.TempDir(), etcd: ek, blockSize: 28}

			seen := map[netip.Addr]string{}
			blockOf := map[string]netip.Prefix{}
			for i := range 4 {
				for _, n := range []cniNode{a, b} {
					p := n.add(t, fmt.Sprintf("%s-c%d", n.name, i))
					if prev, dup := seen[p.Addr()]; dup {
						t.Fatalf("%s handed to %s and %s-c%d", p.Addr(), prev, n.name, i)
					}
					seen[p.Addr()] = fmt.Sprintf("%s-c%d", n.name, i)
					blk, _ := p.Addr().Prefix(28)
					if got, ok := blockOf[n.name]; ok && got != blk {
						t.Errorf("%s: %s is in block %s, want its first block %s", n.name, p.Addr(), blk, got)
					}
					blockOf[n.name] = blk
				}
			}
			if blockOf["node-a"] == blockOf["node-b"] {
				t.Fatalf("both nodes allocate from block %s", blockOf["node-a"])
			}

			c := cniNode{name: "node-c", dir: t.TempDir(), etcd: ek, blockSize: 27}
			pc := c.add(t, "c-0")
			cblk, _ := pc.Addr().Prefix(27)
			if cblk.Overlaps(blockOf["node-a"]) || cblk.Overlaps(blockOf["node-b"]) {
				t.Errorf("node with blockSize 27 got %s in %s, overlapping %s or %s", pc, cblk, blockOf["node-a"], blockOf["node-b"])
			}

			srv.Stop()
			// node-a holds a /28: 16 addresses, 4 used, so 12 more fit.
			for i := 4; i < 16; i++ {
				a.add(t, fmt.Sprintf("node-a-c%d", i))
			}
			o := a.run(t, "ADD", "node-a-c16")
			if o.Code != 11 || !strings.Contains(o.Msg, srv.Endpoints()[0]) {
				t.Fatalf("ADD needing a new block with etcd down: code %d %q, want 11 naming %s", o.Code, o.Msg, srv.Endpoints()[0])
			}
			if o := a.run(t, "DEL", "node-a-c0"); o.Code != 0 {
				t.Fatalf("DEL with etcd down: code %d %q", o.Code, o.Msg)
			}
			// The released address is in a held block: ADD needs no etcd.
			if p := a.add(t, "node-a-c16"); !blockOf["node-a"].Contains(p.Addr()) {
				t.Errorf("ADD after DEL with etcd down got %s, want the freed address in %s", p, blockOf["node-a"])
			}
			srv.Restart()
			p := a.add(t, "node-a-c17")
			if blk, _ := p.Addr().Prefix(28); blk == blockOf["node-a"] || blk == blockOf["node-b"] {
				t.Errorf("after restart node-a got %s in an old block; want a new block", p)
			}
			checkReclaim(t, srv, blockOf["node-b"])
		})
	}
}

// checkReclaim frees node-b's blocks with medianetctl as an operator
// would after losing the node: refused while the block may hold live
// allocations, done with --force, and the block is then free for others.
func checkReclaim(t *testing.T, srv *etcdtest.Server, block netip.Prefix) {
	t.Helper()
	args := []string{"ipam", "reclaim", "--node", "node-b", "--network", "media-cni",
		"--etcd-endpoints", strings.Join(srv.Endpoints(), ","), "--etcd-prefix", "/medianet-cni"}
	if srv.TLS != nil {
		args = append(args, "--etcd-ca", srv.TLS.CAFile, "--etcd-cert", srv.TLS.ClientCert, "--etcd-key", srv.TLS.ClientKey)
	}
	env := os.Environ()
	if srv.User != "" {
		args = append(args, "--etcd-user", srv.User)
		env = append(env, "MEDIANET_ETCD_PASSWORD="+srv.Password)
	}
	ctl := func(extra ...string) (string, error) {
		cmd := exec.Command(binary("medianetctl"), append(args, extra...)...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := ctl()
	if err == nil || !strings.Contains(out, block.String()) || !strings.Contains(out, "--force") {
		t.Fatalf("reclaim of a node with live blocks: err %v, output %q; want a refusal naming %s and --force", err, out, block)
	}
	out, err = ctl("--force")
	if err != nil || !strings.Contains(out, "freed media-cni "+block.String()) {
		t.Fatalf("reclaim --force: err %v, output %q; want %s freed", err, out, block)
	}
	if out, err = ctl("--force"); err != nil || strings.Contains(out, "freed") {
		t.Errorf("second reclaim: err %v, output %q; want nothing left to free", err, out)
	}
}

// TestPluginGivesEmptyBlocksBack: DEL never calls etcd; the runtime's GC
// marks an emptied block empty in etcd and a later GC gives it back once
// idle, so other nodes can claim it; a block with an allocation is kept.
func TestPluginGivesEmptyBlocksBack(t *testing.T) {
	etcdtest.SkipUnlessAvailable(t)
	srv := etcdtest.Start(t, etcdtest.Options{})
	ek := etcdKeys(srv)
	ek["idleRelease"] = "1ms"
	a := cniNode{name: "node-a", dir: t.TempDir(), etcd: ek, blockSize: 28}

	claims := func() []netip.Prefix {
		cli, err := etcdstore.New(etcdstore.Config{Endpoints: srv.Endpoints(), Prefix: "/medianet-cni"})
		if err != nil {
			t.Fatal(err)
		}
		defer cli.Close()
		cs, err := cli.Claims(context.Background(), "media-cni", "node-a")
		if err != nil {
			t.Fatal(err)
		}
		var out []netip.Prefix
		for _, c := range cs {
			out = append(out, c.Block)
		}
		return out
	}
	p := a.add(t, "c0")
	if got := claims(); len(got) != 1 || !got[0].Contains(p.Addr()) {
		t.Fatalf("after one ADD node-a claims %v, want the one block holding %s", got, p.Addr())
	}
	gc := func() {
		t.Helper()
		conf := a.conf()
		var m map[string]any
		json.Unmarshal(conf, &m)
		m["cni.dev/valid-attachments"] = []map[string]string{}
		b, _ := json.Marshal(m)
		if o := a.runConf(t, "GC", "", b); o.Code != 0 {
			t.Fatalf("GC: code %d %q", o.Code, o.Msg)
		}
	}
	a.add(t, "c1")
	if o := a.run(t, "DEL", "c0"); o.Code != 0 {
		t.Fatalf("DEL c0: code %d %q", o.Code, o.Msg)
	}
	time.Sleep(5 * time.Millisecond)
	if got := claims(); len(got) != 1 {
		t.Fatalf("block still holding c1 was given back: claims %v", got)
	}
	if o := a.run(t, "DEL", "c1"); o.Code != 0 {
		t.Fatalf("DEL c1: code %d %q", o.Code, o.Msg)
	}
	if got := claims(); len(got) != 1 {
		t.Fatalf("DEL gave the block back (only GC or a sync may): claims %v", got)
	}
	gc() // marks the block empty: its idle time starts
	time.Sleep(5 * time.Millisecond)
	gc()
	if got := claims(); len(got) != 0 {
		t.Fatalf("after the last DEL and GC node-a still claims %v, want none", got)
	}
	if p2 := a.add(t, "c2"); !p2.IsValid() {
		t.Fatal("ADD after give-back failed")
	}
}
