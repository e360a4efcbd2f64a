package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestDoctorChecks: the agent doctors each link of the medianet networks
// whose store is its own, once; other plugins' entries, other data dirs
// and files that do not parse are left out.
func TestDoctorChecks(t *testing.T) {
	dir, data := t.TempDir(), t.TempDir()
	files := map[string]string{
		"10-media.conflist": `{"cniVersion":"1.1.0","name":"media","plugins":[
			{"type":"medianet","master":"eth1","ipam":{"type":"medianet-ipam","subnet":"10.0.0.0/24","gateway":"10.0.0.254","dataDir":"` + data + `"}},
			{"type":"portmap"}]}`,
		"20-same-link.conf": `{"cniVersion":"1.1.0","name":"media2","type":"medianet","master":"eth1",
			"ipam":{"type":"medianet-ipam","subnet":"10.1.0.0/24","dataDir":"` + data + `"}}`,
		"30-vlan.conf": `{"cniVersion":"1.1.0","name":"v","type":"medianet","master":"eth1","vlan":7,
			"ipam":{"type":"medianet-ipam","subnet":"10.2.0.0/24","dataDir":"` + data + `"}}`,
		"40-other-dir.conf": `{"cniVersion":"1.1.0","name":"o","type":"medianet","master":"eth2",
			"ipam":{"type":"medianet-ipam","subnet":"10.3.0.0/24","dataDir":"/elsewhere"}}`,
		"50-reference.conf": `{"cniVersion":"1.1.0","name":"r","type":"macvlan","master":"eth3",
			"ipam":{"type":"medianet-ipam","subnet":"10.4.0.0/24","dataDir":"` + data + `"}}`,
		"60-broken.conf": `{`,
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	checks := doctorChecks([]string{dir}, data)
	var links []string
	for _, c := range checks {
		links = append(links, c.Link())
	}
	if len(checks) != 2 || links[0] != "eth1" || links[1] != "eth1.7" {
		t.Fatalf("checks for links %v, want [eth1 eth1.7]", links)
	}
	if len(checks[0].Gateways) != 1 || checks[0].Gateways[0].String() != "10.0.0.254" {
		t.Errorf("eth1's gateways %v, want the first network's 10.0.0.254", checks[0].Gateways)
	}
}
