package cni

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func parse(t *testing.T, conf string) *Config {
	t.Helper()
	c, err := ParseConfig([]byte(conf))
	if err != nil {
		t.Fatal(err)
	}
	c.IPAM.Node = "node-a" // as Plugin.Load resolves it
	return c
}

// TestRecord: a record holds the network's ipam object (node resolved,
// no per-call keys), mode 0600, rewritten only when it changes, and
// Recorded reads it back as the plugin parses it.
func TestRecord(t *testing.T) {
	dir := t.TempDir()
	conf := func(extra, timeout string) string {
		return `{"cniVersion":"1.1.0","name":"a/b","type":"macvlan",` + extra + `"ipam":{"type":"medianet-ipam","subnet":"10.9.0.0/24",
			"dataDir":"` + dir + `","etcd":{"endpoints":["http://127.0.0.1:2379"],"passwordFile":"/etc/medianet/etcd/password","requestTimeout":"` + timeout + `"}}}`
	}
	if err := Record(parse(t, conf(`"runtimeConfig":{"ips":["10.9.0.5"]},`, "2s"))); err != nil {
		t.Fatal(err)
	}
	path := recordPath(dir, "a/b")
	if filepath.Dir(path) != filepath.Join(dir, RecordDir) {
		t.Fatalf("record of a/b at %s: outside %s", path, RecordDir)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("record: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}
	b, _ := os.ReadFile(path)
	for _, bad := range []string{"runtimeConfig", "10.9.0.5", "macvlan"} {
		if strings.Contains(string(b), bad) {
			t.Errorf("record holds %q: %s", bad, b)
		}
	}
	if !strings.Contains(string(b), `"node":"node-a"`) || !strings.Contains(string(b), "passwordFile") {
		t.Errorf("record lacks the resolved node or passwordFile: %s", b)
	}
	// The same network again, other per-call keys: the file is untouched.
	if err := Record(parse(t, conf(`"prevResult":{"cniVersion":"1.1.0"},`, "2s"))); err != nil {
		t.Fatal(err)
	}
	if fi2, _ := os.Stat(path); !os.SameFile(fi, fi2) || fi2.ModTime() != fi.ModTime() {
		t.Errorf("an unchanged network's record was rewritten")
	}
	// A changed configuration replaces it (a new file renamed over it).
	if err := Record(parse(t, conf("", "3s"))); err != nil {
		t.Fatal(err)
	}
	got, err := Recorded(dir)
	if err != nil || len(got) != 1 {
		t.Fatalf("Recorded = %v, %v; want one network", got, err)
	}
	if g := got[0]; g.Net.Name != "a/b" || g.Net.IPAM.Etcd.RequestTimeout != "3s" || g.IPAM.Node != "node-a" || g.DataDir != dir || !g.UsesEtcd() {
		t.Errorf("recorded %+v, want a/b, timeout 3s, node-a, data dir %s, etcd", g.Net, dir)
	}
	if es, _ := os.ReadDir(filepath.Join(dir, RecordDir)); len(es) != 1 {
		t.Errorf("%d files in %s, want the record only (no temporary left)", len(es), RecordDir)
	}
	// A broken record is skipped and named; the others still come.
	if err := os.WriteFile(filepath.Join(dir, RecordDir, "broken.json"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err = Recorded(dir)
	if len(got) != 1 || err == nil || !strings.Contains(err.Error(), "broken.json") {
		t.Errorf("Recorded with a broken file = %d networks, %v; want 1 and an error naming it", len(got), err)
	}
	if got, err := Recorded(t.TempDir()); len(got) != 0 || err != nil {
		t.Errorf("Recorded without records = %v, %v", got, err)
	}
}

// BenchmarkRecordUnchanged: what an ADD of an unchanged etcd network pays
// for its record (marshal, read, compare).
func BenchmarkRecordUnchanged(b *testing.B) {
	dir := b.TempDir()
	c, err := ParseConfig([]byte(`{"cniVersion":"1.1.0","name":"media","ipam":{"type":"medianet-ipam","subnet":"10.9.0.0/24",
		"dataDir":"` + dir + `","etcd":{"endpoints":["http://127.0.0.1:2379"]}}}`))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if err := Record(c); err != nil {
			b.Fatal(err)
		}
	}
}
