package ctl

import (
	"net/netip"

	"github.com/medianet/medianet/dhcp"
)

// leaseEntries lists the DHCP leases the node agent keeps in dataDir's
// dhcp.db (the agent writes it; this only reads), of network ("" all).
func leaseEntries(dataDir, network string) ([]listEntry, error) {
	ls, err := dhcp.ReadLeases(dataDir)
	if err != nil {
		return nil, err
	}
	var out []listEntry
	for _, l := range ls {
		if network != "" && l.Network != network {
			continue
		}
		e := listEntry{Network: l.Network, ContainerID: l.ContainerID, IfName: l.IfName, Created: l.Obtained,
			LeaseExpires: l.Expires, LeaseState: l.State, LeaseServer: l.Server}
		if p, err := netip.ParsePrefix(l.Address); err == nil {
			e.IPs = []string{p.Addr().String()}
		}
		out = append(out, e)
	}
	return out, nil
}
