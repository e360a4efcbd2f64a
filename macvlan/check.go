package macvlan

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
)

// Check verifies that link ifname in targetNS is a macvlan on spec.Master
// (looked up in hostNS) with spec's mode, and MTU and MAC when set, and
// that cfg's addresses, default routes and routes are present. The error
// names everything missing or different and wraps ErrLinkNotFound,
// ErrMismatch, ErrAddressMissing or ErrRouteMissing.
func Check(hostNS string, spec Spec, targetNS, ifname string, cfg Config) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	th, err := handleAt(targetNS)
	if err != nil {
		return err
	}
	defer th.Close()
	l, err := th.LinkByName(ifname)
	if isNotFound(err) {
		return fmt.Errorf("macvlan: check %q in netns %q: %w", ifname, targetNS, ErrLinkNotFound)
	}
	if err != nil {
		return fmt.Errorf("macvlan: check %q: %w", ifname, err)
	}
	errs := checkLink(hostNS, spec, l)
	errs = append(errs, checkAddrs(th, l, cfg.Addresses)...)
	errs = append(errs, checkRoutes(th, l, cfg.routes())...)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("macvlan: check %q in netns %q: %w", ifname, targetNS, err)
	}
	return nil
}

func checkLink(hostNS string, spec Spec, l netlink.Link) []error {
	mv, ok := l.(*netlink.Macvlan)
	if !ok {
		return []error{fmt.Errorf("%w: kind %s, want macvlan", ErrMismatch, l.Type())}
	}
	var errs []error
	want, err := spec.Mode.netlink()
	if err != nil {
		return []error{err}
	}
	if mv.Mode != want {
		errs = append(errs, fmt.Errorf("%w: mode %s, want %s", ErrMismatch, modeOf(mv.Mode), modeOf(want)))
	}
	if spec.MTU != 0 && mv.MTU != spec.MTU {
		errs = append(errs, fmt.Errorf("%w: mtu %d, want %d", ErrMismatch, mv.MTU, spec.MTU))
	}
	if spec.MAC != nil && !bytes.Equal(mv.HardwareAddr, spec.MAC) {
		errs = append(errs, fmt.Errorf("%w: mac %s, want %s", ErrMismatch, mv.HardwareAddr, spec.MAC))
	}
	if spec.Master != "" {
		hh, err := handleAt(hostNS)
		if err != nil {
			return append(errs, err)
		}
		defer hh.Close()
		m, err := hh.LinkByName(spec.Master)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("master %q: %w", spec.Master, ErrMasterNotFound))
		case m.Attrs().Index != mv.ParentIndex:
			errs = append(errs, fmt.Errorf("%w: master index %d, want %q (index %d)", ErrMismatch, mv.ParentIndex, spec.Master, m.Attrs().Index))
		}
	}
	return errs
}

func checkAddrs(h handle, l netlink.Link, want []netip.Prefix) []error {
	addrs, err := h.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		return []error{fmt.Errorf("list addresses: %w", err)}
	}
	have := map[netip.Prefix]bool{}
	for _, a := range addrs {
		if p, ok := toPrefix(a.IPNet.IP, a.IPNet.Mask); ok {
			have[p] = true
		}
	}
	var errs []error
	for _, p := range want {
		if !have[p] {
			errs = append(errs, fmt.Errorf("%w: %s", ErrAddressMissing, p))
		}
	}
	return errs
}

func checkRoutes(h handle, l netlink.Link, want []Route) []error {
	routes, err := h.RouteList(l, netlink.FAMILY_ALL)
	if err != nil {
		return []error{fmt.Errorf("list routes: %w", err)}
	}
	have := map[Route]bool{}
	for _, r := range routes {
		var got Route
		if r.Dst == nil {
			got.Dst = netip.PrefixFrom(netip.IPv4Unspecified(), 0)
			if r.Family == netlink.FAMILY_V6 {
				got.Dst = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
			}
		} else if p, ok := toPrefix(r.Dst.IP, r.Dst.Mask); ok {
			got.Dst = p
		}
		if gw, ok := netip.AddrFromSlice(r.Gw); ok {
			got.Gw = gw.Unmap()
		}
		have[got] = true
	}
	var errs []error
	for _, r := range want {
		r.Dst = r.Dst.Masked()
		if !have[r] {
			errs = append(errs, fmt.Errorf("%w: %s via %s", ErrRouteMissing, r.Dst, r.Gw))
		}
	}
	return errs
}

func toPrefix(ip []byte, mask []byte) (netip.Prefix, bool) {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.Prefix{}, false
	}
	a = a.Unmap()
	ones := 0
	for _, b := range mask {
		for ; b != 0; b <<= 1 {
			ones += int(b >> 7)
		}
	}
	if a.Is4() && len(mask) == 16 {
		ones -= 96
	}
	return netip.PrefixFrom(a, ones), true
}
