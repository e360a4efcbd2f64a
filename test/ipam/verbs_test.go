package ipam_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/medianet/medianet/internal/cnitest"
	"github.com/medianet/medianet/ipam/boltstore"
)

func netConf(ver, dir, ipam string) []byte {
	return fmt.Appendf(nil, `{"cniVersion":%q,"name":"media","type":"medianet-ipam","ipam":{"type":"medianet-ipam","dataDir":%q,%s}}`, ver, dir, ipam)
}

const dualStack = `"subnets":[{"subnet":"192.168.100.0/24","gateway":"192.168.100.254"},"fd00:100::/64"],"exclude":["192.168.100.1","192.168.100.2/31"]`

func TestVerbsEveryVersion(t *testing.T) {
	p := bin("medianet-ipam")
	for _, ver := range []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"} {
		t.Run(ver, func(t *testing.T) {
			dir := t.TempDir()
			conf := netConf(ver, dir, dualStack)
			c, err := plugin(p, "ADD", "ctr-1", "eth0", conf)
			if err != nil {
				t.Fatal(err)
			}
			r := parseResult(t, c)
			if r.CNIVersion != ver || addrs(r) != "192.168.100.4,fd00:100::2" || r.IPs[0].Gateway != "192.168.100.254" {
				t.Fatalf("ADD result %+v, want version %s, 192.168.100.4 and fd00:100::2, gateway 192.168.100.254", r, ver)
			}
			if strings.HasPrefix(ver, "0.3") && r.IPs[0].Version != "4" {
				t.Errorf("0.3.x result lacks ip version: %+v", r.IPs[0])
			}
			again := parseResult(t, must(t)(plugin(p, "ADD", "ctr-1", "eth0", conf)))
			if addrs(again) != addrs(r) {
				t.Errorf("second ADD = %s, want %s", addrs(again), addrs(r))
			}
			withPrev := addPrev(t, conf, c.Stdout)
			check := must(t)(plugin(p, "CHECK", "ctr-1", "eth0", withPrev))
			if ver < "0.4.0" {
				if check.Err().Code != 1 { // skel refuses CHECK before 0.4.0
					t.Errorf("CHECK at %s: %s, want code 1", ver, check.Stdout)
				}
			} else if check.Exit != 0 {
				t.Errorf("CHECK: exit %d %s", check.Exit, check.Stdout)
			}
			parseResult(t, must(t)(plugin(p, "ADD", "ctr-2", "eth0", conf)))
			if ver == "1.1.0" {
				gcVerbs(t, p, conf, dir)
			}
			for range 2 { // DEL is idempotent
				if d := must(t)(plugin(p, "DEL", "ctr-1", "eth0", conf)); d.Exit != 0 || d.Stdout != "" {
					t.Errorf("DEL: exit %d, stdout %q", d.Exit, d.Stdout)
				}
			}
			if ver >= "0.4.0" {
				if c := must(t)(plugin(p, "CHECK", "ctr-1", "eth0", conf)); c.Exit == 0 {
					t.Errorf("CHECK after DEL succeeded")
				}
			}
			for _, e := range list(t, dir, "media") {
				if e.ContainerID == "ctr-1" {
					t.Errorf("ctr-1 still listed after DEL: %+v", e)
				}
			}
		})
	}
}

func gcVerbs(t *testing.T, p string, conf []byte, dir string) {
	t.Helper()
	if s := must(t)(plugin(p, "STATUS", "", "", conf)); s.Exit != 0 {
		t.Errorf("STATUS: exit %d %s", s.Exit, s.Stdout)
	}
	var m map[string]any
	json.Unmarshal(conf, &m)
	m["cni.dev/valid-attachments"] = []map[string]string{{"containerID": "ctr-1", "ifname": "eth0"}}
	gcConf, _ := json.Marshal(m)
	if g := must(t)(plugin(p, "GC", "", "", gcConf)); g.Exit != 0 {
		t.Fatalf("GC: exit %d %s", g.Exit, g.Stdout)
	}
	entries := list(t, dir, "media")
	if len(entries) != 1 || entries[0].ContainerID != "ctr-1" {
		t.Errorf("after GC keeping ctr-1: %+v", entries)
	}
}

func addPrev(t *testing.T, conf []byte, res string) []byte {
	t.Helper()
	var m map[string]any
	var prev map[string]any
	if json.Unmarshal(conf, &m) != nil || json.Unmarshal([]byte(res), &prev) != nil {
		t.Fatalf("bad conf or result %s", res)
	}
	m["prevResult"] = prev
	out, _ := json.Marshal(m)
	return out
}

func must(t *testing.T) func(cnitest.Call, error) cnitest.Call {
	return func(c cnitest.Call, err error) cnitest.Call {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
}

func TestStatusExhausted(t *testing.T) {
	p := bin("medianet-ipam")
	dir := t.TempDir()
	conf := netConf("1.1.0", dir, `"subnet":"10.60.0.0/29"`) // .2 - .6 usable
	for i := range 5 {
		parseResult(t, must(t)(plugin(p, "ADD", fmt.Sprintf("c%d", i), "eth0", conf)))
	}
	s := must(t)(plugin(p, "STATUS", "", "", conf))
	if s.Err().Code != 50 || !strings.Contains(s.Err().Msg, "10.60.0.0/29") {
		t.Errorf("STATUS of a full network: %s, want code 50 naming the range", s.Stdout)
	}
	a := must(t)(plugin(p, "ADD", "c9", "eth0", conf))
	if a.Err().Code != 100 || !strings.Contains(a.Err().Msg, `network "media"`) {
		t.Errorf("ADD to a full network: %s", a.Stdout)
	}
	if a.Stderr != "" {
		t.Errorf("plugin wrote to stderr: %q", a.Stderr)
	}
}

// TestBadInput: every bad configuration gives CNI code 7 naming the field,
// and nothing is written.
func TestBadInput(t *testing.T) {
	p := bin("medianet-ipam")
	tmp := t.TempDir()
	readOnly := filepath.Join(tmp, "file-not-dir")
	os.WriteFile(readOnly, nil, 0o600)
	tests := []struct {
		name, conf, msg string
	}{
		{"no subnet", `{"cniVersion":"1.1.0","name":"m","ipam":{"type":"medianet-ipam","dataDir":"DIR"}}`, "ipam.subnet is missing"},
		{"malformed subnet", `{"cniVersion":"1.1.0","name":"m","ipam":{"subnet":"192.168.100.0/33","dataDir":"DIR"}}`, `ipam.subnet "192.168.100.0/33"`},
		{"gateway outside", `{"cniVersion":"1.1.0","name":"m","ipam":{"subnet":"192.168.100.0/24","gateway":"10.1.0.1","dataDir":"DIR"}}`, `ipam.gateway "10.1.0.1" is outside ipam.subnet "192.168.100.0/24"`},
		{"ranges overlap", `{"cniVersion":"1.1.0","name":"m","ipam":{"subnet":"192.168.100.0/24","node":"a","nodeRanges":{"a":["192.168.100.0/27"],"b":["192.168.100.16/28"]},"dataDir":"DIR"}}`, `192.168.100.0/27 of node "a" overlaps 192.168.100.16/28 of node "b"`},
		{"range outside", `{"cniVersion":"1.1.0","name":"m","ipam":{"subnet":"192.168.100.0/24","node":"a","nodeRanges":{"a":["10.0.0.0/28"]},"dataDir":"DIR"}}`, `nodeRanges["a"]: 10.0.0.0/28 is outside`},
		{"node without range", `{"cniVersion":"1.1.0","name":"m","ipam":{"subnet":"192.168.100.0/24","node":"z","nodeRanges":{"a":["192.168.100.0/28"]},"dataDir":"DIR"}}`, `no range for node "z"`},
		{"exclude all", `{"cniVersion":"1.1.0","name":"m","ipam":{"subnet":"192.168.100.0/30","exclude":["192.168.100.0/30"],"dataDir":"DIR"}}`, "no usable address"},
		{"wrong type", `{"cniVersion":"1.1.0","name":"m","ipam":{"subnet":"192.168.100.0/24","blockSize":"28","dataDir":"DIR"}}`, "ipam.blockSize: got a JSON string"},
		{"wrong type list", `{"cniVersion":"1.1.0","name":"m","ipam":{"subnet":"192.168.100.0/24","exclude":"192.168.100.1","dataDir":"DIR"}}`, "ipam.exclude: got a JSON string, want a list"},
		{"dataDir is a file", `{"cniVersion":"1.1.0","name":"m","ipam":{"subnet":"192.168.100.0/24","dataDir":"` + readOnly + `"}}`, "not a directory"},
		{"bad IP arg", `{"cniVersion":"1.1.0","name":"m","ipam":{"subnet":"192.168.100.0/24","dataDir":"DIR"},"runtimeConfig":{"ips":["nope"]}}`, `runtimeConfig.ips: "nope"`},
		{"IP outside node", `{"cniVersion":"1.1.0","name":"m","ipam":{"subnet":"192.168.100.0/24","node":"a","nodeRanges":{"a":["192.168.100.0/28"]},"dataDir":"DIR"},"runtimeConfig":{"ips":["192.168.100.40/24"]}}`, "outside this node's ranges 192.168.100.0/28"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			conf := []byte(strings.ReplaceAll(tt.conf, "DIR", dir))
			c := must(t)(plugin(p, "ADD", "c1", "eth0", conf))
			if e := c.Err(); c.Exit == 0 || e.Code != 7 || !strings.Contains(e.Msg, tt.msg) {
				t.Errorf("ADD: exit %d, stdout %s; want code 7 naming %q", c.Exit, c.Stdout, tt.msg)
			}
			if ents, _ := os.ReadDir(dir); len(ents) > 0 && tt.name != "IP outside node" {
				t.Errorf("bad input wrote %d files into %s", len(ents), dir)
			}
			if tt.name == "IP outside node" {
				if e := list(t, dir, ""); len(e) != 0 {
					t.Errorf("refused request left allocations: %+v", e)
				}
			}
		})
	}
}

// TestDataDirCreated: ADD on a node whose dataDir does not exist creates
// it, mode 0700, as host-local does (a kubelet node does not make it).
func TestDataDirCreated(t *testing.T) {
	p := bin("medianet-ipam")
	dir := filepath.Join(t.TempDir(), "var", "lib", "medianet")
	parseResult(t, must(t)(plugin(p, "ADD", "c1", "eth0", netConf("1.1.0", dir, `"subnet":"10.62.0.0/24"`))))
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("dataDir after ADD: %v, %v; want a 0700 directory", fi, err)
	}
}

// TestBusy: while another process holds the store, ADD waits up to
// MEDIANET_STORE_TIMEOUT and then fails with code 11, allocating nothing.
func TestBusy(t *testing.T) {
	p := bin("medianet-ipam")
	dir := t.TempDir()
	conf := netConf("1.1.0", dir, `"subnet":"10.61.0.0/24"`)
	parseResult(t, must(t)(plugin(p, "ADD", "first", "eth0", conf)))
	// Another process inside a transaction holds the node's store lock.
	lock, err := os.OpenFile(filepath.Join(dir, boltstore.LockName), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	c := must(t)(plugin(p, "ADD", "second", "eth0", conf, "MEDIANET_STORE_TIMEOUT=300ms"))
	lock.Close()
	if e := c.Err(); e.Code != 11 || !strings.Contains(e.Msg, "try again later") {
		t.Errorf("ADD against a held store: %s, want code 11 try again later", c.Stdout)
	}
	if e := list(t, dir, "media"); len(e) != 1 {
		t.Errorf("after busy ADD, %d allocations, want 1", len(e))
	}
	parseResult(t, must(t)(plugin(p, "ADD", "second", "eth0", conf)))
}
