package cni

// DHCP mode ("ipam": {"dhcp": {...}}): addresses are leases from the
// LAN's DHCP server, which the node agent (medianetd, package dhcp)
// obtains on the container's own link, keeps, renews and releases; the
// plugin asks it over <dataDir>/dhcp.sock (package dhcpapi) and keeps
// nothing itself.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/medianet/medianet/dhcp/dhcpapi"
	"github.com/medianet/medianet/ipam"
	"github.com/medianet/medianet/macvlan"
)

// DHCPConf is the "ipam.dhcp" object; {} takes every default.
type DHCPConf struct {
	// Timeout bounds one ADD's exchange with the server (a Go duration,
	// default "10s", at most "2m").
	Timeout string `json:"timeout,omitempty"`
	// Hostname is option 12 (default: the pod's name, else the first 12
	// characters of the container ID).
	Hostname string `json:"hostname,omitempty"`
}

// Defaults and bounds of ipam.dhcp.
const (
	DefaultDHCPTimeout = 10 * time.Second
	maxDHCPTimeout     = 2 * time.Minute
)

// DHCPConfig is ipam.dhcp parsed.
type DHCPConfig struct {
	Timeout  time.Duration
	Hostname string
	// Gateway overrides option 3 (ipam.gateway).
	Gateway netip.Addr
	// Sticky: DEL sends no RELEASE (ipam.sticky).
	Sticky bool
}

// parseDHCP fills c for DHCP mode: no subnet, no node ranges, no etcd.
func parseDHCP(c *Config) (*Config, error) {
	n := &c.Net
	d := &DHCPConfig{Timeout: DefaultDHCPTimeout, Hostname: n.IPAM.DHCP.Hostname}
	if v := n.IPAM.DHCP.Timeout; v != "" {
		t, err := time.ParseDuration(v)
		if err != nil || t <= 0 || t > maxDHCPTimeout {
			return nil, configErr("ipam.dhcp.timeout %q is not a duration between 1s and 2m such as \"10s\"", v)
		}
		d.Timeout = t
	}
	if len(d.Hostname) > 63 {
		return nil, configErr("ipam.dhcp.hostname %q is longer than 63 bytes", d.Hostname)
	}
	for _, f := range []struct {
		set  bool
		name string
	}{{n.IPAM.Subnet != "", "ipam.subnet"}, {len(n.IPAM.Subnets) > 0, "ipam.subnets"}, {n.IPAM.NodeRanges != nil, "ipam.nodeRanges"},
		{n.IPAM.Etcd != nil, "ipam.etcd"}, {len(n.IPAM.Exclude) > 0, "ipam.exclude"}} {
		if f.set {
			return nil, configErr("%s does not go with ipam.dhcp: the DHCP server owns the addresses; drop one of them", f.name)
		}
	}
	if n.IPAM.Gateway != "" {
		gw, err := netip.ParseAddr(n.IPAM.Gateway)
		if err != nil || !gw.Is4() {
			return nil, configErr("ipam.gateway %q is not an IPv4 address", n.IPAM.Gateway)
		}
		d.Gateway = gw
	}
	if err := CheckIPAMRoutes(n); err != nil {
		return nil, err
	}
	if n.IPAM.Sticky != "" {
		s, err := time.ParseDuration(n.IPAM.Sticky)
		if err != nil || s < 0 {
			return nil, configErr("ipam.sticky %q is not a duration such as \"30m\"", n.IPAM.Sticky)
		}
		d.Sticky = s > 0
	}
	c.DHCP = d
	return c, nil
}

// dhcpKey is the attachment's lease key.
func dhcpKey(c *Config, containerID, ifname string) dhcpapi.Key {
	return dhcpapi.Key{Network: c.Net.Name, ContainerID: containerID, IfName: ifname}
}

// dhcpIdentity is the client identifier and hostname of the attachment:
// the pod (namespace/name) when the runtime names it, so the same pod
// gets its address back on any node; else the container.
func dhcpIdentity(c *Config, args *skel.CmdArgs) (clientID, hostname string) {
	hostname = c.DHCP.Hostname
	if c.Workload != "" {
		clientID = "medianet/k8s/" + c.Workload + "/" + args.IfName
		if hostname == "" {
			_, name, _ := cutLast(c.Workload, "/")
			hostname = name
		}
	} else {
		clientID = "medianet/cni/" + args.ContainerID + "/" + args.IfName
	}
	if hostname == "" {
		hostname = args.ContainerID[:min(12, len(args.ContainerID))]
	}
	return clientID, hostname
}

func cutLast(s, sep string) (before, after string, found bool) {
	for i := len(s) - len(sep); i >= 0; i-- {
		if s[i:i+len(sep)] == sep {
			return s[:i], s[i+len(sep):], true
		}
	}
	return "", s, false
}

func (p *Plugin) dhcpClient(c *Config) *dhcpapi.Client { return dhcpapi.NewClient(c.DataDir) }

// dhcpAdd asks the agent for a lease on the attachment's link, which
// must exist in CNI_NETNS (the main plugin made it, or the reference
// macvlan before it runs this IPAM).
func (p *Plugin) dhcpAdd(ctx context.Context, args *skel.CmdArgs, c *Config) (*current.Result, error) {
	if args.Netns == "" {
		return nil, configErr("ipam.dhcp needs CNI_NETNS: the lease is taken on the container's link")
	}
	haveDefault, err := defaultRoutes(args.Netns)
	if err != nil {
		return nil, err
	}
	id, host := dhcpIdentity(c, args)
	ctx, cancel := context.WithTimeout(ctx, c.DHCP.Timeout+5*time.Second)
	defer cancel()
	l, err := p.dhcpClient(c).Acquire(ctx, dhcpapi.AcquireRequest{Key: dhcpKey(c, args.ContainerID, args.IfName),
		Netns: args.Netns, ClientID: id, Hostname: host, Timeout: c.DHCP.Timeout, Sticky: c.DHCP.Sticky})
	if err != nil {
		return nil, fmt.Errorf("network %q: %w", c.Net.Name, err)
	}
	return dhcpResult(c, l, haveDefault.v4)
}

// dhcpResult makes the result of lease l: its address and gateway
// (ipam.gateway wins over option 3; without either, a 0.0.0.0/0 entry of
// option 121), its option 121 routes unless ipam.routes is set, and a
// default route via the gateway only when the namespace had no IPv4
// default route (the rule of routes.go).
func dhcpResult(c *Config, l dhcpapi.Lease, haveDefault bool) (*current.Result, error) {
	p, err := netip.ParsePrefix(l.Address)
	if err != nil {
		return nil, fmt.Errorf("lease address %q: %w", l.Address, err)
	}
	gw := c.DHCP.Gateway
	if !gw.IsValid() && l.Gateway != "" {
		gw, _ = netip.ParseAddr(l.Gateway)
	}
	res := &current.Result{CNIVersion: current.ImplementedSpecVersion}
	var routes []*types.Route
	for _, r := range l.Routes {
		dst, err := netip.ParsePrefix(r.Dst)
		if err != nil {
			continue
		}
		rgw, _ := netip.ParseAddr(r.GW)
		if dst.Bits() == 0 {
			if !gw.IsValid() {
				gw = rgw
			}
			continue
		}
		routes = append(routes, route(dst, rgw))
	}
	if len(c.Net.IPAM.Routes) > 0 {
		routes = ipamRoutes(&c.Net)
	}
	ipc := &current.IPConfig{Address: net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 32)}}
	if gw.IsValid() {
		ipc.Gateway = gw.AsSlice()
		if !haveDefault && !hasDefault(routes) {
			routes = append(routes, route(netip.PrefixFrom(netip.IPv4Unspecified(), 0), gw))
		}
	}
	res.IPs = []*current.IPConfig{ipc}
	res.Routes = routes
	res.DNS.Nameservers = l.DNS
	res.DNS.Domain = l.Domain
	return res, nil
}

func hasDefault(rs []*types.Route) bool {
	for _, r := range rs {
		if ones, _ := r.Dst.Mask.Size(); ones == 0 {
			return true
		}
	}
	return false
}

// dhcpRelease has the agent give the lease back (RELEASE, unless
// sticky) and forget it; no lease, or no data directory, is success. It
// returns the released address.
func (p *Plugin) dhcpRelease(ctx context.Context, args *skel.CmdArgs, c *Config) (ipam.Allocation, bool, error) {
	k := dhcpKey(c, args.ContainerID, args.IfName)
	cl := p.dhcpClient(c)
	l, err := cl.Get(ctx, k)
	if errors.Is(err, dhcpapi.ErrNotFound) {
		return ipam.Allocation{}, false, nil
	}
	if errors.Is(err, dhcpapi.ErrNoAgent) {
		// No agent ever kept a lease here: nothing to release. Else the
		// runtime retries until the agent is back (it would renew the
		// lease of a container gone otherwise).
		if _, serr := os.Stat(filepath.Join(c.DataDir, "dhcp.db")); errors.Is(serr, os.ErrNotExist) {
			return ipam.Allocation{}, false, nil
		}
	}
	if err != nil {
		return ipam.Allocation{}, false, err
	}
	if err := cl.Release(ctx, k); err != nil {
		return ipam.Allocation{}, false, err
	}
	return leaseAllocation(l), true, nil
}

func leaseAllocation(l dhcpapi.Lease) ipam.Allocation {
	a := ipam.Allocation{Key: ipam.Key{Network: l.Network, ContainerID: l.ContainerID, IfName: l.IfName}}
	if p, err := netip.ParsePrefix(l.Address); err == nil {
		a.IPs = []netip.Addr{p.Addr()}
	}
	return a
}

// dhcpCheck fails when the agent holds no lease for the attachment, the
// lease expired (its address was taken off the link), or prevResult
// does not list the leased address.
func (p *Plugin) dhcpCheck(ctx context.Context, args *skel.CmdArgs, c *Config) error {
	l, err := p.dhcpClient(c).Get(ctx, dhcpKey(c, args.ContainerID, args.IfName))
	if err != nil {
		return err
	}
	if l.State != dhcpapi.StateBound {
		return fmt.Errorf("check %s/%s: the lease of %s from server %s ended at %s without renewal and its address was removed: %w",
			args.ContainerID, args.IfName, l.Address, l.Server, l.Expires.Format(time.RFC3339), dhcpapi.ErrExpired)
	}
	if c.Net.RawPrevResult == nil {
		return nil
	}
	prev, err := prevResult(c)
	if err != nil {
		return err
	}
	for _, ip := range prev.IPs {
		if ip.Address.String() == l.Address {
			return nil
		}
	}
	return fmt.Errorf("check %s/%s: leased %s is missing from prevResult: %w", args.ContainerID, args.IfName, l.Address, ipam.ErrCorrupt)
}

// dhcpCollect releases the network's leases of attachments not in valid.
func (p *Plugin) dhcpCollect(ctx context.Context, c *Config, valid []types.GCAttachment) ([]ipam.Allocation, error) {
	keep := make([]dhcpapi.Key, len(valid))
	for i, v := range valid {
		keep[i] = dhcpKey(c, v.ContainerID, v.IfName)
	}
	gone, err := p.dhcpClient(c).GC(ctx, c.Net.Name, keep)
	var out []ipam.Allocation
	for _, l := range gone {
		out = append(out, leaseAllocation(l))
	}
	return out, err
}

// dhcpStatus fails when no agent keeps leases on this node.
func (p *Plugin) dhcpStatus(ctx context.Context, c *Config) error {
	_, err := p.dhcpClient(c).List(ctx, c.Net.Name)
	return err
}

// delDHCP is the main plugin's DEL in DHCP mode: the lease is released
// first, from the container's link (RELEASE goes out on it), then the
// link is deleted, then the host shim's route.
func (m *Main) delDHCP(ctx context.Context, args *skel.CmdArgs, c *MainConfig) error {
	alloc, _, err := m.IPAM.Release(ctx, args, c.IPAM)
	if err != nil {
		return err
	}
	if args.Netns != "" {
		if err := macvlan.Delete(args.Netns, args.IfName); err != nil {
			return err
		}
		if err := macvlan.DeleteTemp(args.Netns); err != nil {
			return err
		}
	}
	if c.Shim == nil {
		return nil
	}
	return m.delShimRoutes(c, alloc.IPs)
}
