package dhcp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// scratchLink is the name of the short-lived macvlan inside its
// anonymous namespace (alone there, so no name can clash).
const scratchLink = "lease0"

// scratch is a short-lived macvlan with a workload's MAC on a parent of
// the agent's namespace, inside an anonymous namespace: the workload's
// own link does not exist yet (Docker's RequestAddress) or is gone (a
// RELEASE after the container). The namespace, and the macvlan with it,
// goes when close drops its descriptor, or when the process dies.
type scratch struct {
	ns netns.NsHandle
	// path names the namespace for ns.WithNetNSPath while it is open.
	path string
}

// macvlanModes are the macvlan modes by their names in the configuration.
var macvlanModes = map[string]netlink.MacvlanMode{
	"": netlink.MACVLAN_MODE_BRIDGE, "bridge": netlink.MACVLAN_MODE_BRIDGE,
	"private": netlink.MACVLAN_MODE_PRIVATE, "vepa": netlink.MACVLAN_MODE_VEPA,
	"passthru": netlink.MACVLAN_MODE_PASSTHRU,
}

// newScratch makes the macvlan with mac on parent, in mode, inside a new
// anonymous namespace, and sets it up. A macvlan with mac that is still
// on parent (the workload's link, alive) makes it fail: the kernel
// refuses a second one.
func newScratch(parent string, mac net.HardwareAddr, mode string) (_ *scratch, retErr error) {
	m, ok := macvlanModes[mode]
	if !ok {
		return nil, fmt.Errorf("macvlan mode %q: use bridge, private, vepa or passthru", mode)
	}
	lower, err := netlink.LinkByName(parent)
	if err != nil {
		return nil, fmt.Errorf("parent %q: %w", parent, err)
	}
	s := &scratch{ns: netns.None()}
	defer func() {
		if retErr != nil {
			s.close()
		}
	}()
	if s.ns, err = newAnonNS(); err != nil {
		return nil, err
	}
	s.path = fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), int(s.ns))
	attrs := netlink.NewLinkAttrs()
	attrs.Name = scratchLink
	attrs.ParentIndex = lower.Attrs().Index
	attrs.HardwareAddr = mac
	attrs.Namespace = netlink.NsFd(int(s.ns))
	if err := netlink.LinkAdd(&netlink.Macvlan{LinkAttrs: attrs, Mode: m}); err != nil {
		if errors.Is(err, unix.EADDRINUSE) {
			return nil, fmt.Errorf("macvlan with MAC %s on %q: another link has the MAC: %w", mac, parent, err)
		}
		return nil, fmt.Errorf("macvlan with MAC %s on %q: %w", mac, parent, err)
	}
	err = inNetns(s.path, func() error {
		link, err := netlink.LinkByName(scratchLink)
		if err == nil {
			err = netlink.LinkSetUp(link)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("macvlan with MAC %s on %q: set up: %w", mac, parent, err)
	}
	return s, nil
}

// configure puts addr on the macvlan, and a default route through
// router when the server is off addr's subnet (a relay), so that a
// RELEASE can go unicast from the leased address.
func (s *scratch) configure(addr netip.Prefix, server, router net.IP) error {
	return inNetns(s.path, func() error {
		link, err := netlink.LinkByName(scratchLink)
		if err != nil {
			return err
		}
		a := &netlink.Addr{IPNet: &net.IPNet{IP: addr.Addr().AsSlice(), Mask: net.CIDRMask(addr.Bits(), 32)}, Flags: unix.IFA_F_NODAD}
		if err := netlink.AddrAdd(link, a); err != nil {
			return fmt.Errorf("address %s: %w", addr, err)
		}
		srv, ok := netip.AddrFromSlice(server)
		if ok && !addr.Masked().Contains(srv.Unmap()) && router != nil {
			r := &netlink.Route{LinkIndex: link.Attrs().Index, Gw: router}
			if err := netlink.RouteAdd(r); err != nil {
				return fmt.Errorf("route via %s: %w", router, err)
			}
		}
		return nil
	})
}

func (s *scratch) close() {
	if s.ns.IsOpen() {
		s.ns.Close()
	}
}

// newAnonNS creates a network namespace with no name: only the returned
// descriptor keeps it alive. The thread that made it is moved back, or
// dies locked.
func newAnonNS() (netns.NsHandle, error) {
	type result struct {
		h   netns.NsHandle
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			ch <- result{netns.None(), err}
			return
		}
		defer orig.Close()
		h, err := netns.New()
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
		ch <- result{h, err}
	}()
	r := <-ch
	if r.err != nil {
		return netns.None(), fmt.Errorf("new network namespace: %w", r.err)
	}
	return r.h, nil
}
