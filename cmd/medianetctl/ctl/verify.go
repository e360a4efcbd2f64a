package ctl

import (
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
func (c *cmd) verify(args []string) error {
	fs := c.flags("ipam verify") // no flags: -h prints them so
	if fs.Parse(args) != nil || fs.NArg() == 0 {
		return errUsage
	}
	files := fs.Args()
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

// ipamConfs returns the medianet-ipam configurations in data
// (cni.IPAMConfs), and an error naming the file's problem when it has none.
func ipamConfs(data []byte) ([][]byte, error) {
	out, err := cni.IPAMConfs(data)
	if err == nil && len(out) == 0 {
		err = fmt.Errorf("no plugin with ipam.type medianet-ipam")
	}
	return out, err
}
