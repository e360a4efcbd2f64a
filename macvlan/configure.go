package macvlan

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Configure sets up link ifname inside targetNS: arp_notify and
// ndisc_notify (accept_dad=0 with SkipDAD), cfg's addresses (replacing
// equal ones, so it can be repeated), link up, a default route via each
// gateway, and cfg's routes, each added beside, never over, another
// link's route to the same destination (addRoute). Addresses go on while
// the link is still down, so bringing it up makes the kernel announce them
// at once (gratuitous ARP through arp_notify; with SkipDAD an unsolicited
// neighbour advertisement through ndisc_notify). When the link was already
// up, Configure calls Announce instead. On error the link may be partly
// configured; callers delete it.
func Configure(targetNS, ifname string, cfg Config) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	fd, err := openNS(targetNS)
	if err != nil {
		return err
	}
	defer fd.Close()
	h, err := newHandleAt(fd)
	if err != nil {
		return fmt.Errorf("macvlan: netlink handle in netns %q: %w", targetNS, err)
	}
	defer h.Close()
	link, err := h.LinkByName(ifname)
	if err != nil {
		return fmt.Errorf("macvlan: configure %q in netns %q: %w", ifname, targetNS, err)
	}
	if err := setSysctls(targetNS, ifname, cfg); err != nil {
		return err
	}
	for _, p := range cfg.Addresses {
		if err := h.AddrReplace(link, toAddr(p, cfg.SkipDAD)); err != nil {
			return fmt.Errorf("macvlan: configure %q: address %s: %w", ifname, p, err)
		}
	}
	wasUp := link.Attrs().Flags&net.FlagUp != 0
	if !wasUp {
		if err := h.LinkSetUp(link); err != nil {
			return fmt.Errorf("macvlan: configure %q: set up: %w", ifname, err)
		}
	}
	for _, r := range cfg.routes() {
		if err := addRoute(h, toRoute(link.Attrs().Index, r)); err != nil {
			return fmt.Errorf("macvlan: configure %q: route %s via %s: %w", ifname, r.Dst, r.Gw, err)
		}
	}
	if wasUp {
		return Announce(targetNS, ifname, cfg.announced())
	}
	return nil
}

// addRoute adds r as `ip route prepend` does (NLM_F_CREATE without
// NLM_F_REPLACE or NLM_F_EXCL, as the reference plugins add routes): a
// route to the same destination through another link, such as the default
// route of a pod's eth0, stays in the table (IPv4 puts the new one first;
// IPv6 makes gateway routes of equal metric multipath) and is used alone
// again once this link is deleted. The same route already present is
// success, so Configure can be repeated.
func addRoute(h handle, r *netlink.Route) error {
	if err := h.RouteAddEcmp(r); err != nil && !errors.Is(err, unix.EEXIST) {
		return err
	}
	return nil
}

// routes returns cfg's default routes followed by its other routes.
func (c Config) routes() []Route {
	rs := make([]Route, 0, len(c.Gateways)+len(c.Routes))
	for _, g := range c.Gateways {
		dst := netip.PrefixFrom(netip.IPv4Unspecified(), 0)
		if g.Is6() {
			dst = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
		}
		rs = append(rs, Route{Dst: dst, Gw: g})
	}
	return append(rs, c.Routes...)
}

// announced lists the addresses Configure announces: every IPv4 address,
// and IPv6 addresses only when DAD is skipped (others are tentative).
func (c Config) announced() []netip.Addr {
	var as []netip.Addr
	for _, p := range c.Addresses {
		if p.Addr().Is4() || c.SkipDAD {
			as = append(as, p.Addr())
		}
	}
	return as
}

func (c Config) has(v6 bool) bool {
	for _, p := range c.Addresses {
		if p.Addr().Is6() == v6 {
			return true
		}
	}
	return false
}

func ipnet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func toAddr(p netip.Prefix, noDAD bool) *netlink.Addr {
	a := &netlink.Addr{IPNet: ipnet(p)}
	if p.Addr().Is6() && noDAD {
		a.Flags = unix.IFA_F_NODAD
	}
	return a
}

func toRoute(index int, r Route) *netlink.Route {
	nr := &netlink.Route{LinkIndex: index, Dst: ipnet(r.Dst.Masked())}
	if r.Gw.IsValid() {
		nr.Gw = r.Gw.AsSlice()
	} else {
		nr.Scope = netlink.SCOPE_LINK
	}
	return nr
}

// setSysctls writes the link's sysctls inside targetNS on a locked thread.
func setSysctls(targetNS, ifname string, cfg Config) error {
	sysctls := map[string]string{filepath.Join("ipv4/conf", ifname, "arp_notify"): "1"}
	if cfg.has(true) {
		sysctls[filepath.Join("ipv6/conf", ifname, "ndisc_notify")] = "1"
		if cfg.SkipDAD {
			sysctls[filepath.Join("ipv6/conf", ifname, "accept_dad")] = "0"
		}
	}
	return inNS(targetNS, func() error {
		for k, v := range sysctls {
			if err := os.WriteFile(filepath.Join("/proc/sys/net", k), []byte(v), 0o644); err != nil {
				return fmt.Errorf("macvlan: configure %q: sysctl net/%s=%s: %w", ifname, k, v, err)
			}
		}
		return nil
	})
}

// inNS runs fn on a locked OS thread inside the namespace at path ("" for
// the caller's own).
func inNS(path string, fn func() error) error {
	target, err := ns.GetNS(path)
	if path == "" {
		target, err = ns.GetCurrentNS()
	}
	if err != nil {
		return fmt.Errorf("macvlan: netns %q: %w", path, err)
	}
	defer target.Close()
	return target.Do(func(ns.NetNS) error { return fn() })
}
