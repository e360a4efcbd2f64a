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
		if !medianetIPAM(p, list.Plugins != nil) {
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

// medianetIPAM reports whether a configuration's ipam.type is
// medianet-ipam, or unset in a single configuration (not a conflist
// entry). Keys match as libcni and the plugin read them: encoding/json
// into a struct, whatever their case ("tYpe" is "type").
func medianetIPAM(entry []byte, inList bool) bool {
	var probe struct {
		IPAM *struct {
			Type *string `json:"type"`
		} `json:"ipam"`
	}
	if json.Unmarshal(entry, &probe) != nil || probe.IPAM == nil {
		return false
	}
	t := probe.IPAM.Type
	return (t != nil && *t == IPAMType) || (t == nil && !inList)
}
