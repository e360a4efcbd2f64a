package cni

import (
	"encoding/json"
	"testing"
)

func TestIPAMConfs(t *testing.T) {
	tests := []struct {
		name, data string
		want       int
	}{
		{"conflist", `{"name":"n","cniVersion":"1.0.0","plugins":[{"type":"medianet","ipam":{"type":"medianet-ipam"}},{"type":"tuning"}]}`, 1},
		{"conflist other ipam", `{"name":"n","plugins":[{"type":"macvlan","ipam":{"type":"host-local"}}]}`, 0},
		{"conf", `{"name":"n","type":"macvlan","ipam":{"type":"medianet-ipam","subnet":"10.0.0.0/24"}}`, 1},
		{"conf without ipam.type", `{"name":"n","ipam":{"subnet":"10.0.0.0/24"}}`, 1},
		{"conf other ipam", `{"name":"n","ipam":{"type":"static"}}`, 0},
		// Keys in another case, as libcni reads them (found by FuzzIPAMConfs).
		{"conflist entry, keys in capitals", `{"name":"n","plugins":[{"type":"macvlan","IPAM":{"Type":"medianet-ipam"}}]}`, 1},
		{"conf with an empty tYpe", `{"name":"n","ipam":{"tYpe":""}}`, 0},
	}
	for _, tt := range tests {
		got, err := IPAMConfs([]byte(tt.data))
		if err != nil || len(got) != tt.want {
			t.Errorf("%s: IPAMConfs = %d confs, %v; want %d", tt.name, len(got), err, tt.want)
		}
	}
	got, _ := IPAMConfs([]byte(`{"name":"list","cniVersion":"1.0.0","plugins":[{"type":"medianet","ipam":{"type":"medianet-ipam"}}]}`))
	var m map[string]any
	if json.Unmarshal(got[0], &m); m["name"] != "list" || m["cniVersion"] != "1.0.0" {
		t.Errorf("conflist entry %s: want the list's name and cniVersion", got[0])
	}
}

func FuzzIPAMConfs(f *testing.F) {
	f.Add([]byte(`{"name":"n","plugins":[{"type":"medianet","ipam":{"type":"medianet-ipam"}},{"type":"tuning"}]}`))
	f.Add([]byte(`{"name":"n","type":"macvlan","ipam":{"type":"medianet-ipam","subnet":"10.0.0.0/24"}}`))
	f.Add([]byte(`{"plugins":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		confs, err := IPAMConfs(data)
		if err != nil {
			return
		}
		for _, c := range confs {
			var m struct {
				IPAM struct {
					Type *string `json:"type"`
				} `json:"ipam"`
			}
			if err := json.Unmarshal(c, &m); err != nil || (m.IPAM.Type != nil && *m.IPAM.Type != IPAMType) {
				t.Fatalf("IPAMConfs(%q) gave %q (%v), not a medianet-ipam entry", data, c, err)
			}
		}
	})
}
