package cni

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/medianet/medianet/macvlan"
	"github.com/vishvananda/netlink"
)

// Main runs the verbs of the main plugin (cmd/medianet): a macvlan link
// in the container's namespace plus IPAM, in-process for medianet-ipam and
// by exec (found in CNI_PATH) for any other ipam type. The zero value is ready; the
// host namespace is the one the process runs in.
type Main struct {
	// IPAM runs medianet-ipam in-process.
	IPAM Plugin
}

// Add creates the link, gets addresses, configures the link (and the host
// shim) and returns the result in the current spec version. A gateway
// gives the default route only for a family the namespace has none of
// (routes.go); routes never replace another interface's. On any error
// nothing is left: no link, no allocation, no shim route.
func (m *Main) Add(ctx context.Context, args *skel.CmdArgs, c *MainConfig) (_ *current.Result, retErr error) {
	spec, err := m.ensureMaster(c)
	if err != nil {
		return nil, err
	}
	// Read before anything changes in the namespace: a default route there
	// belongs to another interface (eth0 under Multus) and stays the one.
	haveDefault, err := defaultRoutes(args.Netns)
	if err != nil {
		return nil, err
	}
	link, err := macvlan.Create("", spec, args.Netns, args.IfName)
	if err != nil {
		return nil, err
	}
	defer func() {
		if retErr != nil {
			_ = macvlan.Delete(args.Netns, args.IfName)
		}
	}()
	// Probed before Configure, while the link has no address
	// (conflict.go).
	ipres, err := m.ipamAddProbed(ctx, args, c)
	if err != nil {
		return nil, err
	}
	defer func() {
		if retErr != nil {
			_ = m.ipamAbort(ctx, args, c)
		}
	}()
	cfg, err := l3Config(c, ipres, haveDefault.without())
	if err != nil {
		return nil, err
	}
	if err := macvlan.Configure(args.Netns, args.IfName, cfg); err != nil {
		return nil, err
	}
	if c.Shim != nil {
		if err := m.addShim(c, spec.Master, cfg.Addresses); err != nil {
			return nil, err
		}
	}
	return buildResult(args, link, ipres, cfg), nil
}

// addShim ensures the host shim on master and a host route per address;
// on error the routes it added are removed again.
func (m *Main) addShim(c *MainConfig, master string, addrs []netip.Prefix) (retErr error) {
	s := *c.Shim
	s.Name, s.Master = c.ShimName(master), master
	if err := macvlan.EnsureShim("", s); err != nil {
		return fmt.Errorf("hostShim: %w", err)
	}
	for _, p := range addrs {
		if err := macvlan.AddShimRoute("", s.Name, p.Addr()); err != nil {
			return fmt.Errorf("hostShim: %w", err)
		}
		defer func() {
			if retErr != nil {
				_ = macvlan.DelShimRoute("", s.Name, p.Addr())
			}
		}()
	}
	return nil
}

// Del deletes the link first (an address is never free while a link still
// carries it), then releases the addresses and removes their shim routes.
// Everything already gone is success.
func (m *Main) Del(ctx context.Context, args *skel.CmdArgs, c *MainConfig) error {
	if c.IPAM != nil && c.IPAM.DHCP != nil {
		return m.delDHCP(ctx, args, c)
	}
	if args.Netns != "" {
		if err := macvlan.Delete(args.Netns, args.IfName); err != nil {
			return err
		}
		if err := macvlan.DeleteTemp(args.Netns); err != nil {
			return err
		}
	}
	addrs, err := m.ipamDel(ctx, args, c)
	if err != nil {
		return err
	}
	if c.Shim == nil {
		return nil
	}
	if c.Net.RawPrevResult != nil {
		if prev, err := prevResultOf(&c.Net); err == nil {
			for _, ip := range prev.IPs {
				if a, ok := netip.AddrFromSlice(ip.Address.IP); ok {
					addrs = append(addrs, a.Unmap())
				}
			}
		}
	}
	return m.delShimRoutes(c, addrs)
}

// delShimRoutes removes the host shim's routes to addrs; a route or shim
// already gone is success.
func (m *Main) delShimRoutes(c *MainConfig, addrs []netip.Addr) error {
	master, err := m.masterName(c)
	if err != nil {
		return nil // no master, so no shim and no routes through it
	}
	shim := c.ShimName(master)
	for _, a := range addrs {
		if err := macvlan.DelShimRoute("", shim, a); err != nil {
			return fmt.Errorf("hostShim: %w", err)
		}
	}
	return nil
}

// Check verifies the link, its addresses and routes against prevResult,
// and the IPAM allocation.
func (m *Main) Check(ctx context.Context, args *skel.CmdArgs, c *MainConfig) error {
	if c.Net.RawPrevResult == nil {
		return configErr("prevResult is missing: CHECK needs the result of ADD")
	}
	prev, err := prevResultOf(&c.Net)
	if err != nil {
		return err
	}
	if c.IPAM != nil && c.IPAM.DHCP != nil {
		// The lease first: an expired one took its address off the
		// link, and the operator needs that reason, not its symptom.
		ic, _, err := m.IPAM.Load(args)
		if err != nil {
			return err
		}
		if err := m.IPAM.Check(ctx, args, ic); err != nil {
			return err
		}
	}
	master, err := m.masterName(c)
	if err != nil {
		return err
	}
	spec := c.Spec
	spec.Master = master
	cfg, err := l3Config(c, prev, families{})
	if err != nil {
		return err
	}
	if err := macvlan.Check("", spec, args.Netns, args.IfName, cfg); err != nil {
		return err
	}
	if c.InProcess() {
		ic, _, err := m.IPAM.Load(args)
		if err != nil {
			return err
		}
		return m.IPAM.Check(ctx, args, ic)
	}
	_, err = m.delegate(ctx, "CHECK", c.Net.IPAM.Type, c.Raw)
	return err
}

// GC forwards cni.dev/valid-attachments to IPAM and, with the host shim,
// removes the routes to the addresses it released.
func (m *Main) GC(ctx context.Context, args *skel.CmdArgs, c *MainConfig) error {
	if !c.InProcess() {
		_, err := m.delegate(ctx, "GC", c.Net.IPAM.Type, c.Raw)
		return err
	}
	ic, _, err := m.IPAM.Load(args)
	if err != nil {
		return err
	}
	gone, err := m.IPAM.Collect(ctx, ic, c.Net.ValidAttachments)
	if err != nil || c.Shim == nil {
		return err
	}
	var addrs []netip.Addr
	for _, a := range gone {
		addrs = append(addrs, a.IPs...)
	}
	return m.delShimRoutes(c, addrs)
}

// Status fails (wrapping macvlan.ErrMasterNotFound, doctor.ErrNotCarrying
// or ipam.ErrExhausted; map with MainStatusError) when the master is
// missing, the node agent's doctor found it cannot carry macvlan frames
// (statusdoctor.go), or IPAM cannot hand out an address.
func (m *Main) Status(ctx context.Context, args *skel.CmdArgs, c *MainConfig) error {
	master := c.Spec.Master
	if master == "" {
		var err error
		if master, err = defaultMaster(); err != nil {
			return err
		}
	}
	if _, err := netlink.LinkByName(master); err != nil {
		return fmt.Errorf("master %q: %w (%v): create it or fix the master setting", master, macvlan.ErrMasterNotFound, err)
	}
	if err := doctorStatus(c, master, time.Now()); err != nil {
		return err
	}
	if c.InProcess() {
		ic, _, err := m.IPAM.Load(args)
		if err != nil {
			return err
		}
		return m.IPAM.Status(ctx, ic)
	}
	_, err := m.delegate(ctx, "STATUS", c.Net.IPAM.Type, c.Raw)
	return err
}

// ipamAdd runs IPAM ADD and returns its result in the current version.
func (m *Main) ipamAdd(ctx context.Context, args *skel.CmdArgs, c *MainConfig) (*current.Result, error) {
	if c.InProcess() {
		ic, ips, err := m.IPAM.Load(args)
		if err != nil {
			return nil, err
		}
		return m.IPAM.Add(ctx, args, ic, ips)
	}
	r, err := m.delegateAdd(ctx, c.Net.IPAM.Type, c.Raw)
	if err != nil {
		return nil, err
	}
	res, err := current.NewResultFromResult(r)
	if err != nil {
		return nil, fmt.Errorf("ipam %s result: %w", c.Net.IPAM.Type, err)
	}
	if len(res.IPs) == 0 {
		return nil, fmt.Errorf("ipam %s returned no address", c.Net.IPAM.Type)
	}
	return res, nil
}

// ipamDel runs IPAM DEL; in-process it returns the released addresses.
func (m *Main) ipamDel(ctx context.Context, args *skel.CmdArgs, c *MainConfig) ([]netip.Addr, error) {
	if !c.InProcess() {
		_, err := m.delegate(ctx, "DEL", c.Net.IPAM.Type, c.Raw)
		return nil, err
	}
	ic, _, err := m.IPAM.Load(args)
	if err != nil {
		return nil, err
	}
	alloc, _, err := m.IPAM.Release(ctx, args, ic)
	return alloc.IPs, err
}

// ipamAbort undoes the IPAM ADD of a failed ADD: nothing is left, and a
// sticky workload's hold that the ADD took is given back as it was (a
// plain DEL would leave a hold for a workload that never ran). The
// medianet-ipam programs take the same path by exec (MEDIANET_ABORT);
// another IPAM plugin gets a DEL.
func (m *Main) ipamAbort(ctx context.Context, args *skel.CmdArgs, c *MainConfig) error {
	if !c.InProcess() {
		var env []string
		if c.Net.IPAM.Type == IPAMType {
			env = append(env, abortEnv+"=1")
		}
		_, err := m.delegate(ctx, "DEL", c.Net.IPAM.Type, c.Raw, env...)
		return err
	}
	ic, _, err := m.IPAM.Load(args)
	if err != nil {
		return err
	}
	return m.IPAM.Abort(ctx, args, ic)
}

// ensureMaster returns c.Spec with Master resolved: the default-route
// interface when unset, and the 802.1q parent (created when missing) with
// a vlan.
func (m *Main) ensureMaster(c *MainConfig) (macvlan.Spec, error) {
	spec := c.Spec
	if spec.Master == "" {
		var err error
		if spec.Master, err = defaultMaster(); err != nil {
			return spec, err
		}
	}
	if c.Net.VLAN != 0 {
		name, _, err := macvlan.EnsureVLAN("", spec.Master, c.Net.VLAN)
		if err != nil {
			return spec, fmt.Errorf("vlan %d on master %q: %w", c.Net.VLAN, spec.Master, err)
		}
		spec.Master = name
	}
	return spec, nil
}

// masterName is the containers' master name without creating anything.
func (m *Main) masterName(c *MainConfig) (string, error) {
	master := c.Spec.Master
	if master == "" {
		var err error
		if master, err = defaultMaster(); err != nil {
			return "", err
		}
	}
	if c.Net.VLAN != 0 {
		return macvlan.VLANName(master, c.Net.VLAN), nil
	}
	return master, nil
}

// defaultMaster returns the interface of the default route (IPv4, then
// IPv6) in the caller's namespace.
func defaultMaster() (string, error) {
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		routes, err := netlink.RouteList(nil, fam)
		if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
			continue
		}
		for _, r := range routes {
			if r.Dst != nil && !isDefault(r.Dst) || r.LinkIndex == 0 {
				continue
			}
			if l, err := netlink.LinkByIndex(r.LinkIndex); err == nil {
				return l.Attrs().Name, nil
			}
		}
	}
	return "", configErr("master is not set and there is no default route to take it from: set master")
}

func isDefault(n *net.IPNet) bool {
	ones, _ := n.Mask.Size()
	return ones == 0
}
