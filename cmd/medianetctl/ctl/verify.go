package ctl

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"slices"

	"github.com/medianet/medianet/cni"
	"github.com/medianet/medianet/ipam"
)

// claim is one range a node takes from a network, and where it was read.
type claim struct {
	network, node, file string
	p                   netip.Prefix
}

// verify reads node configuration files (a .conf, or a .conflist whose
// plugins include medianet-ipam) and fails when two nodes' ranges overlap.
// A file without nodeRanges claims its whole subnets for its node.
func (c *cmd) verify(files []string) error {
	if len(files) == 0 {
		return errUsage
	}
	var claims []claim
	for _, f := range files {
		cl, err := readClaims(f)
		if err != nil {
			return err
		}
		claims = append(claims, cl...)
	}
	for i, a := range claims {
		for _, b := range claims[:i] {
			if a.network != b.network || a.node == b.node || !a.p.Overlaps(b.p) {
				continue
			}
			return fmt.Errorf("network %q: %s of node %q (%s) overlaps %s of node %q (%s): %w",
				a.network, b.p, b.node, b.file, a.p, a.node, a.file, ipam.ErrOverlap)
		}
	}
	fmt.Fprintf(c.out, "%d files, %d ranges: no overlap\n", len(files), len(claims))
	return nil
}

func readClaims(file string) ([]claim, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	confs, err := ipamConfs(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	var out []claim
	for _, raw := range confs {
		c, err := cni.ParseConfig(raw)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		if c.IPAM.NodeRanges != nil {
			for node, ranges := range c.IPAM.NodeRanges {
				for _, p := range ranges {
					out = append(out, claim{c.IPAM.Network, node, file, p})
				}
			}
			continue
		}
		node := c.Net.IPAM.Node
		if node == "" {
			node = "(node of " + file + ")"
		}
		for _, s := range c.IPAM.Subnets {
			out = append(out, claim{c.IPAM.Network, node, file, s.Prefix})
		}
	}
	slices.SortFunc(out, func(a, b claim) int { return a.p.Addr().Compare(b.p.Addr()) })
	return out, nil
}

// ipamConfs returns the network configurations in data that use
// medianet-ipam: data itself, or each plugin of a conflist with the list's
// name and cniVersion.
func ipamConfs(data []byte) ([][]byte, error) {
	var list struct {
		Name       string            `json:"name"`
		CNIVersion string            `json:"cniVersion"`
		Plugins    []json.RawMessage `json:"plugins"`
	}
	if err := json.Unmarshal(data, &list); err != nil {
		return nil, fmt.Errorf("not valid JSON: %w", err)
	}
	if list.Plugins == nil {
		return [][]byte{data}, nil
	}
	var out [][]byte
	for _, p := range list.Plugins {
		var m map[string]any
		if err := json.Unmarshal(p, &m); err != nil {
			return nil, err
		}
		if ip, ok := m["ipam"].(map[string]any); !ok || ip["type"] != "medianet-ipam" {
			continue
		}
		m["name"], m["cniVersion"] = list.Name, list.CNIVersion
		b, _ := json.Marshal(m)
		out = append(out, b)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no plugin with ipam.type medianet-ipam")
	}
	return out, nil
}
