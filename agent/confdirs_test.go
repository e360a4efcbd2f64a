package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestConfDirs(t *testing.T) {
	data, conf, extra := t.TempDir(), t.TempDir(), t.TempDir()
	files := map[string]string{
		// medianet with its in-process IPAM, chained with tuning.
		filepath.Join(conf, "00-media.conflist"): fmt.Sprintf(`{"cniVersion":"1.1.0","name":"media","plugins":[
			{"type":"medianet","master":"eth1","ipam":{"type":"medianet-ipam","subnet":"10.9.0.0/24","dataDir":%q,
			 "nodeRanges":{"node-a":["10.9.0.0/27"],"node-b":["10.9.0.32/27"]}}},
			{"type":"tuning"}]}`, data),
		// the reference macvlan with medianet-ipam in etcd mode, as a .conf.
		filepath.Join(conf, "10-cluster.conf"): fmt.Sprintf(`{"cniVersion":"1.0.0","name":"cluster","type":"macvlan",
			"ipam":{"type":"medianet-ipam","subnet":"10.10.0.0/24","node":"node-x","dataDir":%q,
			"etcd":{"endpoints":["http://127.0.0.1:1"],"requestTimeout":"1s"}}}`, data),
		// another store's network, host-local, and a second "media": skipped.
		filepath.Join(conf, "20-other.conflist"): `{"cniVersion":"1.1.0","name":"other","plugins":[
			{"type":"medianet","ipam":{"type":"medianet-ipam","subnet":"10.11.0.0/24","dataDir":"/elsewhere"}}]}`,
		filepath.Join(conf, "30-hl.conf"):       `{"cniVersion":"1.0.0","name":"hl","type":"macvlan","ipam":{"type":"host-local"}}`,
		filepath.Join(conf, "README"):           `not a configuration`,
		filepath.Join(extra, "media.json"):      fmt.Sprintf(`{"name":"media","type":"medianet","ipam":{"type":"medianet-ipam","subnet":"10.99.0.0/24","dataDir":%q}}`, data),
		filepath.Join(extra, "broken.conflist"): `{"name":`,
	}
	for f, c := range files {
		if err := os.WriteFile(f, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	nets, err := ConfDirs{Dirs: []string{conf, extra, filepath.Join(conf, "missing")}, DataDir: data, Node: "node-a"}.Networks(context.Background())
	if err == nil || !strings.Contains(err.Error(), "broken.conflist") || !strings.Contains(err.Error(), "missing") {
		t.Errorf("error = %v, want one naming broken.conflist and the missing directory", err)
	}
	got := map[string]string{}
	for _, n := range nets {
		got[n.Config.Network] = fmt.Sprintf("node=%s subnet=%s ranges=%v etcd=%v", n.Config.Node, n.Config.Subnets[0].Prefix,
			n.Config.NodeRanges[n.Config.Node], n.Etcd != nil && n.Etcd.Endpoints[0] == "http://127.0.0.1:1")
	}
	want := map[string]string{
		"media":   "node=node-a subnet=10.9.0.0/24 ranges=[10.9.0.0/27] etcd=false",
		"cluster": "node=node-x subnet=10.10.0.0/24 ranges=[] etcd=true",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("networks = %v, want %v", got, want)
	}
}
