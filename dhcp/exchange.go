package dhcp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"syscall"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/medianet/medianet/dhcp/dhcpapi"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// errLinkGone: the lease's link is not where its record says.
var errLinkGone = errors.New("link gone")

// retransmit is the first retransmission interval of an exchange; it
// doubles up to the exchange's deadline (RFC 2131 4.1 starts at 4 s; a
// container waits for us, so we start sooner).
const retransmit = time.Second

// identity is what every message of one attachment carries.
type identity struct {
	clientID []byte // option 61, type byte included
	hostname string // option 12
}

func (id identity) modifiers() []dhcpv4.Modifier {
	ms := []dhcpv4.Modifier{
		dhcpv4.WithOption(dhcpv4.OptClientIdentifier(id.clientID)),
		dhcpv4.WithRequestedOptions(dhcpv4.OptionSubnetMask, dhcpv4.OptionRouter, dhcpv4.OptionDomainNameServer,
			dhcpv4.OptionDomainName, dhcpv4.OptionClasslessStaticRoute, dhcpv4.OptionIPAddressLeaseTime,
			dhcpv4.OptionRenewTimeValue, dhcpv4.OptionRebindingTimeValue),
	}
	if id.hostname != "" {
		ms = append(ms, dhcpv4.WithOption(dhcpv4.OptHostName(id.hostname)))
	}
	return ms
}

// clientID makes option 61's value from the workload's name: type 0
// (RFC 2132 9.14: not a hardware address) and the name, at most 254 bytes.
func clientID(name string) []byte {
	b := append([]byte{0}, name...)
	if len(b) > 255 {
		b = b[:255]
	}
	return b
}

// inNetns runs fn on a thread in the network namespace at path.
func inNetns(path string, fn func() error) error {
	err := ns.WithNetNSPath(path, func(ns.NetNS) error { return fn() })
	var nsErr ns.NSPathNotExistErr
	if errors.As(err, &nsErr) {
		return fmt.Errorf("network namespace %s is gone: %w: %w", path, dhcpapi.ErrBadRequest, err)
	}
	return err
}

// linkRef names a lease's link inside its namespace: by name, or (name
// empty) by MAC, for a link the runtime renames (Docker's).
type linkRef struct {
	name string
	mac  net.HardwareAddr
}

func (l linkRef) String() string {
	if l.name != "" {
		return fmt.Sprintf("%q", l.name)
	}
	return "with MAC " + l.mac.String()
}

// find returns the link; call it inside the namespace.
func (l linkRef) find() (netlink.Link, error) {
	if l.name != "" {
		return netlink.LinkByName(l.name)
	}
	links, err := netlink.LinkList()
	if err != nil {
		return nil, err
	}
	for _, k := range links {
		if k.Type() == "macvlan" && bytes.Equal(k.Attrs().HardwareAddr, l.mac) {
			return k, nil
		}
	}
	return nil, fmt.Errorf("no macvlan with MAC %s", l.mac)
}

// packetClient opens a packet-socket client on link lk in netns, set up
// first, and returns it with the link's MAC.
func packetClient(netnsPath string, lk linkRef) (*nclient4.Client, net.HardwareAddr, error) {
	var c *nclient4.Client
	var mac net.HardwareAddr
	err := inNetns(netnsPath, func() error {
		link, err := lk.find()
		if err != nil {
			return fmt.Errorf("link %s in %s: %w: %w", lk, netnsPath, dhcpapi.ErrBadRequest, err)
		}
		ifname := link.Attrs().Name
		if err := netlink.LinkSetUp(link); err != nil {
			return fmt.Errorf("link %q in %s: set up: %w", ifname, netnsPath, err)
		}
		mac = link.Attrs().HardwareAddr
		c, err = nclient4.New(ifname, nclient4.WithTimeout(retransmit), nclient4.WithRetry(64))
		if err != nil {
			return fmt.Errorf("link %q in %s: packet socket: %w", ifname, netnsPath, err)
		}
		return nil
	})
	return c, mac, err
}

// acquire obtains a lease on link lk in netns, asking for want when
// valid (the workload's remembered address). When held (the server
// should still have the lease: it was never released) it first asks for
// it in INIT-REBOOT (reboot); a NAK there, or silence, restarts with
// DISCOVER, OFFER, REQUEST, ACK (RFC 2131 3.2), still asking for want
// (option 50) after silence, not after a NAK. refused is that NAK, for
// the log and, when the DISCOVER fails too, the error.
func acquire(ctx context.Context, netnsPath string, lk linkRef, id identity, want netip.Addr, held bool) (_ *nclient4.Lease, _ net.HardwareAddr, refused, _ error) {
	c, mac, err := packetClient(netnsPath, lk)
	if err != nil {
		return nil, nil, nil, err
	}
	defer c.Close()
	if want.IsValid() && held {
		lease, err := reboot(ctx, c, mac, id, want)
		switch {
		case err == nil:
			return lease, mac, nil, nil
		case errors.Is(err, dhcpapi.ErrNAK):
			refused = fmt.Errorf("remembered address %s: %w", want, err)
			want = netip.Addr{}
		case ctx.Err() != nil:
			return nil, mac, nil, noAnswer(ctx, err)
		}
	}
	withRefused := func(err error) error {
		if refused != nil {
			return fmt.Errorf("%w (before that, %v)", err, refused)
		}
		return err
	}
	disc := id.modifiers()
	if want.IsValid() {
		disc = append(disc, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(want.AsSlice())))
	}
	offer, err := c.DiscoverOffer(ctx, disc...)
	if err != nil {
		return nil, mac, refused, withRefused(noAnswer(ctx, err))
	}
	if hookAfterOffer != nil {
		hookAfterOffer(offer)
	}
	lease, err := c.RequestFromOffer(ctx, offer, id.modifiers()...)
	if err != nil {
		return nil, mac, refused, withRefused(exchangeErr(ctx, offer.ServerIdentifier(), err))
	}
	return lease, mac, refused, nil
}

// hookAfterOffer, when set (tests only), runs between the OFFER and the
// REQUEST of acquire.
var hookAfterOffer func(offer *dhcpv4.DHCPv4)

// rebootWait bounds an INIT-REBOOT: two transmissions (1 s, then 2 s),
// as systemd-networkd's client tries before it falls back to DISCOVER; a
// server that does not know the client stays silent unless it is
// authoritative (RFC 2131 4.3.2).
const rebootWait = 3 * retransmit

// reboot asks for want in INIT-REBOOT (RFC 2131 4.3.2, 4.4.2): a
// broadcast REQUEST with option 50 and no server identifier. It returns
// the lease on ACK, an ErrNAK naming the server on NAK, and ErrNoAnswer
// after rebootWait (at most half of what ctx leaves) of silence. The ACK
// stands for the OFFER too (its server identifier is the lease's server).
func reboot(ctx context.Context, c *nclient4.Client, mac net.HardwareAddr, id identity, want netip.Addr) (*nclient4.Lease, error) {
	wait := rebootWait
	if dl, ok := ctx.Deadline(); ok {
		wait = min(wait, time.Until(dl)/2)
	}
	rctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	req, err := dhcpv4.New(dhcpv4.PrependModifiers(id.modifiers(), dhcpv4.WithHwAddr(mac),
		dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(want.AsSlice())),
		dhcpv4.WithOption(dhcpv4.OptMaxMessageSize(nclient4.MaxMessageSize)))...)
	if err != nil {
		return nil, err
	}
	resp, err := c.SendAndRead(rctx, nclient4.DefaultServers, req, nclient4.IsMessageType(dhcpv4.MessageTypeAck, dhcpv4.MessageTypeNak))
	if err != nil {
		return nil, noAnswer(rctx, err)
	}
	if resp.MessageType() == dhcpv4.MessageTypeNak {
		return nil, exchangeErr(ctx, resp.ServerIdentifier(), &nclient4.ErrNak{Nak: resp})
	}
	return &nclient4.Lease{Offer: resp, ACK: resp, CreationTime: time.Now()}, nil
}

// regain asks for want again in INIT-REBOOT from link lk in netns (a
// lease that expired; its address is off the link).
func regain(ctx context.Context, netnsPath string, lk linkRef, id identity, want netip.Addr) (*nclient4.Lease, error) {
	c, mac, err := packetClient(netnsPath, lk)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return reboot(ctx, c, mac, id, want)
}

// renew sends REQUEST for lease: unicast from the leased address to the
// server while renewing (before T2), broadcast on the link while
// rebinding.
func renew(ctx context.Context, netnsPath string, lk linkRef, id identity, lease *nclient4.Lease, rebinding bool) (*nclient4.Lease, error) {
	var c *nclient4.Client
	err := inNetns(netnsPath, func() error {
		opts := []nclient4.ClientOpt{nclient4.WithTimeout(retransmit), nclient4.WithRetry(64)}
		link, err := lk.find()
		if err != nil {
			return fmt.Errorf("link %s in %s: %w: %w", lk, netnsPath, errLinkGone, err)
		}
		ifname := link.Attrs().Name
		if rebinding {
			c, err = nclient4.New(ifname, opts...)
		} else {
			c, err = unicastClient(ifname, lease, opts...)
		}
		if err != nil {
			return fmt.Errorf("link %q in %s: socket: %w", ifname, netnsPath, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	l, err := c.Renew(ctx, lease, id.modifiers()...)
	if err != nil {
		return nil, exchangeErr(ctx, lease.ACK.ServerIdentifier(), err)
	}
	return l, nil
}

// release sends RELEASE unicast from the leased address to the server
// (RFC 2131 4.4.4); there is no answer to wait for.
func release(netnsPath string, lk linkRef, id identity, lease *nclient4.Lease) error {
	return inNetns(netnsPath, func() error {
		link, err := lk.find()
		if err != nil {
			return fmt.Errorf("link %s in %s: %w: %w", lk, netnsPath, errLinkGone, err)
		}
		ifname := link.Attrs().Name
		c, err := unicastClient(ifname, lease)
		if err != nil {
			return fmt.Errorf("link %q in %s: socket: %w", ifname, netnsPath, err)
		}
		defer c.Close()
		if err := c.Release(lease, dhcpv4.WithOption(dhcpv4.OptClientIdentifier(id.clientID))); err != nil {
			return fmt.Errorf("release %s to %s: %w", lease.ACK.YourIPAddr, lease.ACK.ServerIdentifier(), err)
		}
		return nil
	})
}

// unicastClient is a client on a UDP socket of port 68 bound to the link
// (SO_BINDTODEVICE, SO_REUSEADDR: one per link of the namespace), sending
// to the lease's server from the leased address. Bound to no address, it
// also hears the NAK a server broadcasts (RFC 2131 4.3.2; dnsmasq does).
// Call it inside the namespace.
func unicastClient(ifname string, lease *nclient4.Lease, opts ...nclient4.ClientOpt) (*nclient4.Client, error) {
	iface, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, err
	}
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); serr != nil {
				return
			}
			if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_BROADCAST, 1); serr != nil {
				return
			}
			serr = unix.BindToDevice(int(fd), ifname)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	conn, err := lc.ListenPacket(context.Background(), "udp4", fmt.Sprintf(":%d", nclient4.ClientPort))
	if err != nil {
		return nil, err
	}
	opts = append(opts, nclient4.WithServerAddr(&net.UDPAddr{IP: lease.ACK.ServerIdentifier(), Port: nclient4.ServerPort}))
	c, err := nclient4.NewWithConn(conn, iface.HardwareAddr, opts...)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

// takeOff takes addr off link lk in netns (the lease expired) and
// returns the link's routes as they were (every table but local, not the
// kernel's own: they go and come with the address); an address or link
// already gone is success.
func takeOff(netnsPath string, lk linkRef, addr netip.Prefix) ([]KeptRoute, error) {
	var kept []KeptRoute
	err := inNetns(netnsPath, func() error {
		link, err := lk.find()
		if err != nil {
			return nil
		}
		ifname := link.Attrs().Name
		rs, err := netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{LinkIndex: link.Attrs().Index, Table: unix.RT_TABLE_UNSPEC},
			netlink.RT_FILTER_OIF|netlink.RT_FILTER_TABLE)
		if err != nil {
			return fmt.Errorf("routes of %q in %s: %w", ifname, netnsPath, err)
		}
		for _, r := range rs {
			if r.Protocol == unix.RTPROT_KERNEL || r.Table == unix.RT_TABLE_LOCAL {
				continue
			}
			k := KeptRoute{Dst: netip.PrefixFrom(netip.IPv4Unspecified(), 0), Scope: uint8(r.Scope), Priority: r.Priority, Table: r.Table}
			if r.Dst != nil {
				ones, _ := r.Dst.Mask.Size()
				if a, ok := netip.AddrFromSlice(r.Dst.IP.To4()); ok {
					k.Dst = netip.PrefixFrom(a, ones)
				}
			}
			k.Gw, _ = netip.AddrFromSlice(r.Gw.To4())
			k.Src, _ = netip.AddrFromSlice(r.Src.To4())
			kept = append(kept, k)
		}
		a := &netlink.Addr{IPNet: &net.IPNet{IP: addr.Addr().AsSlice(), Mask: net.CIDRMask(addr.Bits(), 32)}}
		if err := netlink.AddrDel(link, a); err != nil && !errors.Is(err, errAddrNotAvail) {
			return fmt.Errorf("remove %s from %q in %s: %w", addr, ifname, netnsPath, err)
		}
		return nil
	})
	return kept, err
}

// putBack puts addr and routes back on link lk in netns (a regained
// lease): what takeOff removed.
func putBack(netnsPath string, lk linkRef, addr netip.Prefix, routes []KeptRoute) error {
	return inNetns(netnsPath, func() error {
		link, err := lk.find()
		if err != nil {
			return fmt.Errorf("link %s in %s: %w: %w", lk, netnsPath, errLinkGone, err)
		}
		ifname := link.Attrs().Name
		a := &netlink.Addr{IPNet: &net.IPNet{IP: addr.Addr().AsSlice(), Mask: net.CIDRMask(addr.Bits(), 32)}}
		if err := netlink.AddrReplace(link, a); err != nil {
			return fmt.Errorf("put %s back on %q in %s: %w", addr, ifname, netnsPath, err)
		}
		// Routes without a gateway first: another's gateway may be
		// reachable only through one of them.
		ordered := slices.Clone(routes)
		slices.SortStableFunc(ordered, func(a, b KeptRoute) int { return cmpBool(a.Gw.IsValid(), b.Gw.IsValid()) })
		for _, k := range ordered {
			r := &netlink.Route{LinkIndex: link.Attrs().Index, Scope: netlink.Scope(k.Scope), Priority: k.Priority, Table: k.Table}
			if k.Dst.Bits() > 0 {
				r.Dst = &net.IPNet{IP: k.Dst.Addr().AsSlice(), Mask: net.CIDRMask(k.Dst.Bits(), 32)}
			}
			if k.Gw.IsValid() {
				r.Gw = k.Gw.AsSlice()
			}
			if k.Src.IsValid() {
				r.Src = k.Src.AsSlice()
			}
			if err := netlink.RouteReplace(r); err != nil {
				return fmt.Errorf("put route to %s via %s back on %q in %s: %w", k.Dst, k.Gw, ifname, netnsPath, err)
			}
		}
		return nil
	})
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case !a:
		return -1
	}
	return 1
}

// noAnswer is the error of an exchange no server answered.
func noAnswer(ctx context.Context, err error) error {
	if errors.Is(err, nclient4.ErrNoResponse) || errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
		return fmt.Errorf("%w: no DHCPOFFER: %w", dhcpapi.ErrNoAnswer, err)
	}
	return err
}

// exchangeErr names server in a NAK or a missing answer.
func exchangeErr(ctx context.Context, server net.IP, err error) error {
	var nak *nclient4.ErrNak
	if errors.As(err, &nak) {
		msg := nak.Nak.Message()
		if msg == "" {
			msg = "no message"
		}
		return fmt.Errorf("server %s answered DHCPNAK (%s): %w", nak.Nak.ServerIdentifier(), msg, dhcpapi.ErrNAK)
	}
	if errors.Is(err, nclient4.ErrNoResponse) || errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
		return fmt.Errorf("server %s did not answer: %w", server, dhcpapi.ErrNoAnswer)
	}
	return fmt.Errorf("server %s: %w", server, err)
}
