package dhcp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
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

// acquire runs DISCOVER, OFFER, REQUEST, ACK on link lk in netns,
// asking for want (option 50) when valid. The link is set up first.
func acquire(ctx context.Context, netnsPath string, lk linkRef, id identity, want netip.Addr) (*nclient4.Lease, net.HardwareAddr, error) {
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
	if err != nil {
		return nil, nil, err
	}
	defer c.Close()
	disc := id.modifiers()
	if want.IsValid() {
		disc = append(disc, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(want.AsSlice())))
	}
	offer, err := c.DiscoverOffer(ctx, disc...)
	if err != nil {
		return nil, mac, noAnswer(ctx, err)
	}
	lease, err := c.RequestFromOffer(ctx, offer, id.modifiers()...)
	if err != nil {
		return nil, mac, exchangeErr(ctx, offer.ServerIdentifier(), err)
	}
	return lease, mac, nil
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

// removeAddr takes addr off link ifname in netns (the lease expired);
// an address or link already gone is success.
func removeAddr(netnsPath string, lk linkRef, addr netip.Prefix) error {
	return inNetns(netnsPath, func() error {
		link, err := lk.find()
		if err != nil {
			return nil
		}
		ifname := link.Attrs().Name
		a := &netlink.Addr{IPNet: &net.IPNet{IP: addr.Addr().AsSlice(), Mask: net.CIDRMask(addr.Bits(), 32)}}
		if err := netlink.AddrDel(link, a); err != nil && !errors.Is(err, errAddrNotAvail) {
			return fmt.Errorf("remove %s from %q in %s: %w", addr, ifname, netnsPath, err)
		}
		return nil
	})
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
