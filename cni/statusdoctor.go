package cni

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/medianet/medianet/doctor"
	"github.com/medianet/medianet/macvlan"
)

// DoctorCheck is what the node agent's doctor checks for a network of the
// main plugin, and where it keeps the result for STATUS: one owner of
// "which link do this network's macvlans go on".
type DoctorCheck struct {
	Parent   string // the master, resolved when the config leaves it out
	VLAN     int
	Gateways []netip.Addr // ipam.gateway and ipam.subnets[].gateway
	DataDir  string       // ipam.dataDir, or DefaultDataDir
}

// Link is the name of the link the record is kept under: the parent, or
// its 802.1q link.
func (d DoctorCheck) Link() string {
	if d.VLAN != 0 {
		return macvlan.VLANName(d.Parent, d.VLAN)
	}
	return d.Parent
}

// DoctorCheck returns the check for c; an empty master is resolved as ADD
// resolves it (the default route's interface).
func (c *MainConfig) DoctorCheck() (DoctorCheck, error) {
	d := DoctorCheck{Parent: c.Spec.Master, VLAN: c.Net.VLAN, DataDir: c.Net.IPAM.DataDir}
	if d.DataDir == "" {
		d.DataDir = DefaultDataDir
	}
	if d.Parent == "" {
		var err error
		if d.Parent, err = defaultMaster(); err != nil {
			return DoctorCheck{}, err
		}
	}
	gws := []string{c.Net.IPAM.Gateway}
	for _, s := range c.Net.IPAM.Subnets {
		gws = append(gws, s.Gateway)
	}
	seen := map[bool]bool{}
	for _, g := range gws {
		if a, err := netip.ParseAddr(g); err == nil && !seen[a.Is4()] {
			seen[a.Is4()] = true
			d.Gateways = append(d.Gateways, a)
		}
	}
	return d, nil
}

// doctorStatus fails STATUS (wrapping doctor.ErrNotCarrying, code 50)
// while the node agent's latest doctor record for the network's link
// says it cannot carry macvlan frames. It reads one small file and writes
// nothing; no record, an expired one or one that cannot be read says
// nothing, so the network stays ready as without an agent.
func doctorStatus(c *MainConfig, master string, now time.Time) error {
	d, err := c.DoctorCheck()
	if err != nil {
		return nil // STATUS found the master already; nothing to add
	}
	d.Parent = master
	rec, ok, err := doctor.ReadRecord(d.DataDir, d.Link())
	if err != nil || !ok {
		return nil
	}
	if err := rec.NotReady(now); err != nil {
		return fmt.Errorf("network %q: %w", c.Net.Name, err)
	}
	return nil
}
