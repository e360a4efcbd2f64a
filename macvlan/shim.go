package macvlan

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// A host shim lets the host reach its own macvlan containers: macvlan
// children cannot talk to their master, but they can talk to a sibling
// macvlan in bridge mode. The shim is such a sibling in the host namespace,
// and a /32 (/128) route per container sends the host's traffic through it.
// Containers must use bridge mode on the same master.

// ShimSpec describes a host shim.
type ShimSpec struct {
	Name   string // shim link name in the host namespace, e.g. "mnshim0"
	Master string // the containers' master (after VLAN resolution)
	// Addresses optionally gives the shim its own addresses, used as the
	// source of the host routes of their family. IPv4 works without one
	// (the host answers ARP for its master's address on the shim too);
	// IPv6 needs one, because Linux answers neighbour solicitations only
	// for addresses of the receiving link. Use a /32 or /128 from the LAN.
	Addresses []netip.Prefix
}

// EnsureShim makes sure the shim link exists in hostNS ("" for the
// caller's) as a bridge-mode macvlan on s.Master, is up, and carries
// s.Addresses. An existing link of that name on another master or
// of another kind is an ErrMismatch error.
//
// The shim is shared by every container on the master, and other
// processes (parallel ADDs) may route through it from the moment it
// exists under its name. So EnsureShim never deletes it, not even one it
// has just created: a shim another process creates between this call's
// lookup and its create (EEXIST) is adopted, and a failure after the
// create leaves the shim for the next EnsureShim to complete (it is
// idempotent).
func EnsureShim(hostNS string, s ShimSpec) error {
	if err := s.validate(); err != nil {
		return err
	}
	h, err := handleAt(hostNS)
	if err != nil {
		return err
	}
	defer h.Close()
	m, err := master(h, Spec{Master: s.Master})
	if err != nil {
		return err
	}
	l, err := shimLink(h, s, m)
	if err != nil {
		return err
	}
	if mv, ok := l.(*netlink.Macvlan); !ok || mv.ParentIndex != m.Attrs().Index || mv.Mode != netlink.MACVLAN_MODE_BRIDGE {
		return fmt.Errorf("macvlan: shim %q: %w: want a bridge-mode macvlan on %q (kind %s)", s.Name, ErrMismatch, s.Master, l.Type())
	}
	for _, p := range s.Addresses {
		if err := h.AddrReplace(l, toAddr(p, true)); err != nil {
			return fmt.Errorf("macvlan: shim %q: address %s: %w", s.Name, p, err)
		}
	}
	if l.Attrs().Flags&net.FlagUp == 0 {
		if err := h.LinkSetUp(l); err != nil {
			return fmt.Errorf("macvlan: shim %q: set up: %w", s.Name, err)
		}
	}
	return nil
}

// validate checks the shim's name and addresses before anything is made.
func (s ShimSpec) validate() error {
	if err := validName("shim name", s.Name); err != nil {
		return err
	}
	for i, p := range s.Addresses {
		if !p.IsValid() || p.Addr().Is4In6() {
			return fmt.Errorf("macvlan: shim %q: address %d %q: %w: use an address with a prefix length, such as 192.168.100.253/32", s.Name, i, p, ErrInvalidSpec)
		}
	}
	return nil
}

// testHookShimCreate, when set (by tests), runs between shimLink's lookup
// and its create: where a concurrent process may create the shim.
var testHookShimCreate func()

// shimLink returns the link named s.Name in h, creating it (up, in bridge
// mode on m) when missing, or adopting the one another process created
// since the lookup.
func shimLink(h handle, s ShimSpec, m netlink.Link) (netlink.Link, error) {
	l, err := h.LinkByName(s.Name)
	if err == nil {
		return l, nil
	} else if !isNotFound(err) {
		return nil, fmt.Errorf("macvlan: shim %q: %w", s.Name, err)
	}
	if testHookShimCreate != nil {
		testHookShimCreate()
	}
	mv := newMacvlan(Spec{Master: s.Master}, m, s.Name)
	mv.Flags = net.FlagUp
	if err := h.LinkAdd(mv); err != nil && !errors.Is(err, unix.EEXIST) {
		return nil, fmt.Errorf("macvlan: create shim %q on %q: %w", s.Name, s.Master, err)
	}
	if l, err = h.LinkByName(s.Name); err != nil {
		return nil, fmt.Errorf("macvlan: create shim %q: %w", s.Name, err)
	}
	return l, nil
}

// AddShimRoute adds (or replaces) the host route dst/32 (/128) through
// the shim link in hostNS. It wraps ErrLinkNotFound without a shim.
func AddShimRoute(hostNS, shim string, dst netip.Addr) error {
	return shimRoute(hostNS, shim, dst, true)
}

// DelShimRoute removes the host route to dst through the shim; a missing
// route or shim is success.
func DelShimRoute(hostNS, shim string, dst netip.Addr) error {
	return shimRoute(hostNS, shim, dst, false)
}

func shimRoute(hostNS, shim string, dst netip.Addr, add bool) error {
	if !dst.IsValid() {
		return fmt.Errorf("macvlan: shim route: address %q: %w", dst, ErrInvalidSpec)
	}
	dst = dst.Unmap()
	h, err := handleAt(hostNS)
	if err != nil {
		if !add && errors.Is(err, ErrNetNSNotFound) {
			return nil
		}
		return err
	}
	defer h.Close()
	l, err := h.LinkByName(shim)
	if isNotFound(err) {
		if !add {
			return nil
		}
		return fmt.Errorf("macvlan: shim route to %s: shim %q: %w", dst, shim, ErrLinkNotFound)
	} else if err != nil {
		return fmt.Errorf("macvlan: shim route to %s: %w", dst, err)
	}
	r := toRoute(l.Attrs().Index, Route{Dst: netip.PrefixFrom(dst, dst.BitLen())})
	if add {
		if r.Src, err = shimSource(h, l, dst); err != nil {
			return err
		}
		if err := h.RouteReplace(r); err != nil {
			return fmt.Errorf("macvlan: shim route to %s via %q: %w", dst, shim, err)
		}
		return nil
	}
	if err := h.RouteDel(r); err != nil && !errors.Is(err, unix.ESRCH) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("macvlan: delete shim route to %s via %q: %w", dst, shim, err)
	}
	return nil
}

// DeleteShim removes the shim link (and with it its routes) from hostNS;
// a missing shim is success. Call it when the last container is gone.
func DeleteShim(hostNS, shim string) error {
	h, ok, err := existingHandleAt(hostNS)
	if !ok {
		return err
	}
	defer h.Close()
	return deleteLink(h, shim)
}

// shimSource returns the shim's first global address of dst's family, or
// nil to let the kernel choose.
func shimSource(h handle, l netlink.Link, dst netip.Addr) (net.IP, error) {
	fam := netlink.FAMILY_V4
	if dst.Is6() {
		fam = netlink.FAMILY_V6
	}
	addrs, err := h.AddrList(l, fam)
	if err != nil {
		return nil, fmt.Errorf("macvlan: shim %q: list addresses: %w", l.Attrs().Name, err)
	}
	for _, a := range addrs {
		if a.Scope == unix.RT_SCOPE_UNIVERSE {
			return a.IP, nil
		}
	}
	return nil, nil
}
