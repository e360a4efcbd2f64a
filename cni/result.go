package cni

import (
	"net"

	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/medianet/medianet/ipam"
)

// Result converts an allocation to a CNI result: each address with its
// subnet's prefix length and gateway, and ipam.routes as host-local
// returns them (no default route of its own: the main plugin decides that,
// see routes.go).
func Result(c *Config, alloc ipam.Allocation) *current.Result {
	res := &current.Result{CNIVersion: current.ImplementedSpecVersion}
	for _, ip := range alloc.IPs {
		s, ok := c.IPAM.SubnetOf(ip)
		bits := ip.BitLen()
		if ok {
			bits = s.Prefix.Bits()
		}
		cfg := &current.IPConfig{Address: net.IPNet{IP: ip.AsSlice(), Mask: net.CIDRMask(bits, ip.BitLen())}}
		if gw := s.GatewayAddr(); ok && gw.IsValid() {
			cfg.Gateway = gw.AsSlice()
		}
		res.IPs = append(res.IPs, cfg)
	}
	res.Routes = ipamRoutes(&c.Net)
	return res
}
