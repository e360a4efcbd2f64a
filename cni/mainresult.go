package cni

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/medianet/medianet/macvlan"
)

// l3Config turns an IPAM (or previous) result into the link's layer-3
// setup: its addresses, the result's routes (a route without gw goes via
// its family's first gateway, as the reference plugins do), then the
// configuration's routes. A default route via the first gateway of a
// family is added only for the families in gwDefault (ADD: those the
// namespace has no default route for) that no route already covers with
// a default; CHECK passes none, as the previous result lists every route
// ADD made.
func l3Config(c *MainConfig, res *current.Result, gwDefault families) (macvlan.Config, error) {
	cfg := macvlan.Config{SkipDAD: c.Net.SkipDAD}
	gw := map[bool]netip.Addr{}
	for _, ip := range res.IPs {
		a, ok := netip.AddrFromSlice(ip.Address.IP)
		if !ok {
			return cfg, fmt.Errorf("ipam result: bad address %v", ip.Address)
		}
		bits, _ := ip.Address.Mask.Size()
		cfg.Addresses = append(cfg.Addresses, netip.PrefixFrom(a.Unmap(), bits))
		if g, ok := netip.AddrFromSlice(ip.Gateway); ok && !gw[a.Unmap().Is4()].IsValid() {
			gw[a.Unmap().Is4()] = g.Unmap()
		}
	}
	var asked families // families with a default route in some routes list
	for _, r := range res.Routes {
		dst, ok := prefixOf(&r.Dst)
		if !ok {
			continue
		}
		g, _ := netip.AddrFromSlice(r.GW)
		g = g.Unmap()
		if containsRoute(c.Routes, dst, g) {
			continue // the configuration's own, added below
		}
		if !g.IsValid() {
			g = gw[dst.Addr().Is4()] // CNI: no gw means the family's gateway
		}
		cfg.Routes = append(cfg.Routes, macvlan.Route{Dst: dst, Gw: g})
	}
	cfg.Routes = append(cfg.Routes, c.Routes...)
	for _, r := range cfg.Routes {
		if r.Dst.Bits() == 0 {
			asked.set(r.Dst.Addr())
		}
	}
	for _, is4 := range []bool{true, false} {
		if g := gw[is4]; g.IsValid() && gwDefault.has(g) && !asked.has(g) {
			cfg.Gateways = append(cfg.Gateways, g)
		}
	}
	return cfg, nil
}

func containsRoute(rs []macvlan.Route, dst netip.Prefix, gw netip.Addr) bool {
	for _, r := range rs {
		if r.Dst == dst && r.Gw == gw {
			return true
		}
	}
	return false
}

func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	bits, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), bits).Masked(), true
}

// buildResult is the ADD result: the container interface, its addresses,
// its routes (default routes first) and the IPAM result's DNS.
func buildResult(args *skel.CmdArgs, link macvlan.Link, ipres *current.Result, cfg macvlan.Config) *current.Result {
	res := &current.Result{
		CNIVersion: current.ImplementedSpecVersion,
		Interfaces: []*current.Interface{{Name: args.IfName, Mac: link.MAC.String(), Mtu: link.MTU, Sandbox: args.Netns}},
		DNS:        ipres.DNS,
	}
	for _, ip := range ipres.IPs {
		c := *ip
		c.Interface = current.Int(0)
		res.IPs = append(res.IPs, &c)
	}
	for _, g := range cfg.Gateways {
		dst := netip.PrefixFrom(netip.IPv4Unspecified(), 0)
		if g.Is6() {
			dst = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
		}
		res.Routes = append(res.Routes, route(dst, g))
	}
	for _, r := range cfg.Routes {
		res.Routes = append(res.Routes, route(r.Dst, r.Gw))
	}
	return res
}

func route(dst netip.Prefix, gw netip.Addr) *types.Route {
	r := &types.Route{Dst: net.IPNet{IP: dst.Addr().AsSlice(), Mask: net.CIDRMask(dst.Bits(), dst.Addr().BitLen())}}
	if gw.IsValid() {
		r.GW = gw.AsSlice()
	}
	return r
}
