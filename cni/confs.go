package cni

import (
	"encoding/json"
	"fmt"
)

// IPAMConfs returns the network configurations in data (a .conf or a
// .conflist, as libcni reads them) whose IPAM is medianet-ipam: a single
// configuration whose ipam.type is medianet-ipam or unset, or each plugin
// entry of a conflist with ipam.type medianet-ipam, given the list's name
// and cniVersion as libcni passes them. Data with none gives none.
func IPAMConfs(data []byte) ([][]byte, error) {
	var list struct {
		Name       string            `json:"name"`
		CNIVersion string            `json:"cniVersion"`
		Plugins    []json.RawMessage `json:"plugins"`
	}
	if err := json.Unmarshal(data, &list); err != nil {
		return nil, fmt.Errorf("not valid JSON: %w", err)
	}
	entries := list.Plugins
	if entries == nil {
		entries = []json.RawMessage{data}
	}
	var out [][]byte
	for _, p := range entries {
		var m map[string]any
		if err := json.Unmarshal(p, &m); err != nil {
			return nil, fmt.Errorf("plugin entry: %w", err)
		}
		ip, ok := m["ipam"].(map[string]any)
		if !ok || (ip["type"] != IPAMType && (list.Plugins != nil || ip["type"] != nil)) {
			continue
		}
		if list.Plugins != nil {
			m["name"], m["cniVersion"] = list.Name, list.CNIVersion
		}
		b, err := json.Marshal(m)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}
