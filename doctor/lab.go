package doctor

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"

	"github.com/medianet/medianet/macvlan"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// LinkPrefix starts the name of the doctor's temporary macvlan (and
// temporary VLAN link), inside its anonymous namespace.
const LinkPrefix = "mndoc"

// side is one end that sends probes: a link in a namespace.
type side struct {
	ns      netns.NsHandle // not owned
	ifname  string
	ifindex int
	mac     net.HardwareAddr
}

// lab is the doctor's setup: the anonymous namespace holding the test
// macvlan, and the control link (the parent, or its VLAN link) with the
// parent's own MAC.
type lab struct {
	host     netns.NsHandle
	anon     netns.NsHandle
	hh, ah   *netlink.Handle
	linkName string // the tested link: parent or parent.vlan
	linkIdx  int    // its index in host, when it lives there
	mtu      int
	test     side
	control  side
}

func (l *lab) close() {
	for _, h := range []*netlink.Handle{l.hh, l.ah} {
		if h != nil {
			h.Close()
		}
	}
	// Closing the last descriptor of the anonymous namespace makes the
	// kernel destroy it with the macvlan inside.
	for _, fd := range []netns.NsHandle{l.host, l.anon} {
		if fd.IsOpen() {
			fd.Close()
		}
	}
}

// setUp checks the parent and, when it can carry frames, builds the lab.
// A non-empty verdict (parent missing, down, no carrier) ends the run.
func setUp(opts Options) (_ *lab, _ Verdict, retErr error) {
	// None, not the zero NsHandle: 0 is stdin's descriptor, and close
	// would close it (and whatever reused the number) when the run ends
	// before the namespaces are opened (a parent missing or down).
	l := &lab{linkName: opts.Parent, host: netns.None(), anon: netns.None()}
	defer func() {
		if retErr != nil {
			l.close()
		}
	}()
	var err error
	if l.host, err = openNS(opts.HostNS); err != nil {
		return nil, "", err
	}
	if l.hh, err = netlink.NewHandleAt(l.host, unix.NETLINK_ROUTE); err != nil {
		return nil, "", fmt.Errorf("doctor: netlink handle in %q: %w", opts.HostNS, err)
	}
	parent, v, err := l.check(opts.Parent)
	if v != "" || err != nil {
		return l, v, err
	}
	if l.anon, err = newAnonNS(); err != nil {
		return nil, "", err
	}
	if l.ah, err = netlink.NewHandleAt(l.anon, unix.NETLINK_ROUTE); err != nil {
		return nil, "", fmt.Errorf("doctor: netlink handle in the doctor's namespace: %w", err)
	}
	lower, err := l.lower(opts, parent)
	if err != nil {
		return nil, "", err
	}
	if v := state(lower); v != "" {
		return l, v, nil
	}
	return l, "", l.makeTestLink(lower)
}

// check finds name in the host namespace and judges its state.
func (l *lab) check(name string) (netlink.Link, Verdict, error) {
	link, err := l.hh.LinkByName(name)
	var nf netlink.LinkNotFoundError
	if errors.As(err, &nf) || errors.Is(err, unix.ENODEV) {
		return nil, ParentMissing, nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("doctor: parent %q: %w", name, err)
	}
	return link, state(link), nil
}

// state judges a link's flags: "" when it can carry frames.
func state(link netlink.Link) Verdict {
	switch f := link.Attrs().RawFlags; {
	case f&unix.IFF_UP == 0:
		return ParentDown
	case f&unix.IFF_LOWER_UP == 0:
		return NoCarrier
	}
	return ""
}

// lower returns the link the test macvlan goes on, and sets the control
// side: the parent itself; with a VLAN, the host's "<parent>.<vlan>"
// when it exists, else a temporary VLAN link made inside the anonymous
// namespace (it carries the parent's MAC, so it is the control too).
func (l *lab) lower(opts Options, parent netlink.Link) (netlink.Link, error) {
	l.control = side{ns: l.host, ifname: parent.Attrs().Name, ifindex: parent.Attrs().Index, mac: parent.Attrs().HardwareAddr}
	l.linkIdx, l.mtu = parent.Attrs().Index, parent.Attrs().MTU
	if opts.VLAN == 0 {
		return parent, nil
	}
	l.linkName = macvlan.VLANName(opts.Parent, opts.VLAN)
	if v, err := l.hh.LinkByName(l.linkName); err == nil {
		a := v.Attrs()
		l.control = side{ns: l.host, ifname: a.Name, ifindex: a.Index, mac: a.HardwareAddr}
		l.linkIdx, l.mtu = a.Index, a.MTU
		return v, nil
	}
	attrs := netlink.NewLinkAttrs()
	attrs.Name, attrs.ParentIndex, attrs.Namespace = tempName(), parent.Attrs().Index, netlink.NsFd(l.anon)
	if err := l.hh.LinkAdd(&netlink.Vlan{LinkAttrs: attrs, VlanId: opts.VLAN}); err != nil {
		if errors.Is(err, unix.EOPNOTSUPP) {
			return nil, fmt.Errorf("doctor: vlan %d on %q: %w (%v)", opts.VLAN, opts.Parent, ErrNoVLAN, err)
		}
		return nil, fmt.Errorf("doctor: vlan %d on %q: %w", opts.VLAN, opts.Parent, err)
	}
	v, err := l.ah.LinkByName(attrs.Name)
	if err == nil {
		err = l.ah.LinkSetUp(v)
	}
	if err == nil {
		v, err = l.ah.LinkByName(attrs.Name)
	}
	if err != nil {
		return nil, fmt.Errorf("doctor: vlan %d on %q: %w", opts.VLAN, opts.Parent, err)
	}
	a := v.Attrs()
	l.control = side{ns: l.anon, ifname: a.Name, ifindex: a.Index, mac: a.HardwareAddr}
	l.linkIdx = 0
	return v, nil
}

// makeTestLink creates the macvlan with a fresh MAC on lower directly in
// the anonymous namespace, quiet (no IPv6 of its own), and sets it up.
func (l *lab) makeTestLink(lower netlink.Link) error {
	mac, err := newMAC(rand.Read)
	if err != nil {
		return err
	}
	attrs := netlink.NewLinkAttrs()
	attrs.Name, attrs.HardwareAddr, attrs.MTU = tempName(), mac, lower.Attrs().MTU
	attrs.ParentIndex = lower.Attrs().Index
	h := l.ah // a temporary VLAN link lives in the anonymous namespace
	if l.control.ns == l.host {
		h = l.hh
		attrs.Namespace = netlink.NsFd(l.anon)
	}
	mv := &netlink.Macvlan{LinkAttrs: attrs, Mode: netlink.MACVLAN_MODE_BRIDGE}
	if err := h.LinkAdd(mv); err != nil {
		return fmt.Errorf("doctor: macvlan on %q: %w", lower.Attrs().Name, err)
	}
	err = inNS(l.anon, func() error {
		err := os.WriteFile("/proc/sys/net/ipv6/conf/"+attrs.Name+"/disable_ipv6", []byte("1"), 0o644)
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.EROFS) {
			// A kernel without IPv6, or a container whose /proc/sys is
			// read-only (a pod without privileged, a managed Docker
			// plugin): the link then only sends its own IPv6 link-local
			// noise, which changes no verdict.
			return nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("doctor: macvlan on %q: quiet IPv6: %w", lower.Attrs().Name, err)
	}
	link, err := l.ah.LinkByName(attrs.Name)
	if err == nil {
		err = l.ah.LinkSetUp(link)
	}
	if err != nil {
		return fmt.Errorf("doctor: macvlan on %q: up: %w", lower.Attrs().Name, err)
	}
	l.test = side{ns: l.anon, ifname: attrs.Name, ifindex: link.Attrs().Index, mac: mac}
	return nil
}

// targets returns what to ask: opts' gateways and peers, or the gateways
// of the default routes via the tested link.
func (l *lab) targets(opts Options) ([]target, error) {
	var ts []target
	for _, g := range opts.Gateways {
		ts = append(ts, target{addr: g, role: "gateway"})
	}
	if len(ts) == 0 && l.linkIdx != 0 {
		for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
			routes, err := l.hh.RouteListFiltered(fam, &netlink.Route{LinkIndex: l.linkIdx}, netlink.RT_FILTER_OIF)
			if err != nil {
				return nil, fmt.Errorf("doctor: routes via %q: %w", l.linkName, err)
			}
			for _, r := range routes {
				gw, ok := netip.AddrFromSlice(r.Gw)
				if ok && (r.Dst == nil || isDefault(r.Dst)) {
					ts = append(ts, target{addr: gw.Unmap(), role: "gateway"})
					break
				}
			}
		}
	}
	for _, p := range opts.Peers {
		ts = append(ts, target{addr: p, role: "peer"})
	}
	if len(ts) == 0 {
		return nil, fmt.Errorf("doctor: %q has no default route and no gateway or peer was given: %w: give --gateway or --peer", l.linkName, ErrNoTarget)
	}
	return ts, nil
}

func isDefault(n *net.IPNet) bool {
	ones, _ := n.Mask.Size()
	return ones == 0
}

func tempName() string {
	var b [5]byte
	_, _ = rand.Read(b[:])
	return LinkPrefix + hex.EncodeToString(b[:]) // 15 bytes
}

func openNS(path string) (netns.NsHandle, error) {
	if path == "" {
		h, err := netns.Get()
		if err != nil {
			return netns.None(), fmt.Errorf("doctor: current netns: %w", err)
		}
		return h, nil
	}
	h, err := netns.GetFromPath(path)
	if err != nil {
		return netns.None(), fmt.Errorf("doctor: netns %q: %w", path, err)
	}
	return h, nil
}

// newAnonNS creates a network namespace with no name: only the returned
// descriptor keeps it alive.
func newAnonNS() (netns.NsHandle, error) {
	var h netns.NsHandle
	err := onLockedThread(func(orig netns.NsHandle) error {
		var err error
		h, err = netns.New() // moves the thread; onLockedThread moves it back
		return err
	})
	if err != nil {
		return netns.None(), fmt.Errorf("doctor: new netns: %w", err)
	}
	return h, nil
}

// inNS runs fn on a locked OS thread inside target.
func inNS(target netns.NsHandle, fn func() error) error {
	return onLockedThread(func(netns.NsHandle) error {
		if err := netns.Set(target); err != nil {
			return fmt.Errorf("doctor: enter netns: %w", err)
		}
		return fn()
	})
}

// onLockedThread runs fn on a fresh goroutine's locked thread and moves the
// thread back to its namespace afterwards; when that fails the thread
// stays locked and dies with the goroutine.
func onLockedThread(fn func(orig netns.NsHandle) error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		err = fn(orig)
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}
