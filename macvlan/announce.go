package macvlan

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"

	"golang.org/x/sys/unix"
)

// Announce sends, from link ifname in nsPath ("" for the caller's), a
// gratuitous ARP request per IPv4 address and an unsolicited neighbour
// advertisement (override flag) per IPv6 address in addrs, as raw frames,
// so peers holding an entry for an address replace its MAC at once.
// Configure does this through the kernel when it brings the link up; call
// Announce to repeat it later (e.g. after a move, or for a link someone
// else configured). Its AF_PACKET socket is closed in the background,
// since closing one waits for an RCU grace period (about 10 ms).
func Announce(nsPath, ifname string, addrs []netip.Addr) error {
	return announceOn(nsPath, ifname, nil, addrs)
}

// AnnounceFor sends the frames Announce sends for a link whose MAC is mac,
// but out of link parent in nsPath ("" for the caller's), with mac as
// their source: the LAN learns mac for addrs though the link itself is out
// of the caller's reach (in a namespace it cannot open, or not configured
// yet). Macvlans on parent do not see these frames, since a parent's own
// sends are not bridged to its macvlans: to update their caches too,
// announce from the link itself once it is configured.
func AnnounceFor(nsPath, parent string, mac net.HardwareAddr, addrs []netip.Addr) error {
	if len(mac) != 6 {
		return fmt.Errorf("macvlan: announce on %q: MAC %q is not a 6-byte Ethernet address", parent, mac)
	}
	return announceOn(nsPath, parent, mac, addrs)
}

// announceOn sends the announcements for addrs out of ifname in nsPath,
// from mac (nil: the link's own).
func announceOn(nsPath, ifname string, mac net.HardwareAddr, addrs []netip.Addr) error {
	var v4, v6 bool
	for _, a := range addrs {
		v4, v6 = v4 || a.Is4(), v6 || a.Is6()
	}
	var a *announcer
	err := inNS(nsPath, func() (err error) {
		a, err = openAnnouncer(ifname, v4, v6)
		return err
	})
	if err != nil || a == nil {
		return err
	}
	defer func() { go a.close() }()
	if mac != nil {
		a.mac = mac
	}
	return a.announce(addrs)
}

// announcer sends raw announcement frames out of one link. Its socket is
// opened inside the link's namespace and then used from any thread.
type announcer struct {
	fd      int
	ifindex int
	ifname  string
	mac     net.HardwareAddr
}

// openAnnouncer opens a send-only AF_PACKET socket on ifname in the
// calling thread's namespace; it returns nil when nothing is to be sent.
func openAnnouncer(ifname string, v4, v6 bool) (*announcer, error) {
	if !v4 && !v6 {
		return nil, nil
	}
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("macvlan: announce on %q: %w", ifname, err)
	}
	// Protocol 0: the socket receives nothing, it only sends.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("macvlan: announce on %q: packet socket: %w", ifname, err)
	}
	return &announcer{fd: fd, ifindex: ifi.Index, ifname: ifname, mac: ifi.HardwareAddr}, nil
}

func (a *announcer) close() {
	if a != nil {
		unix.Close(a.fd)
	}
}

// announce sends a gratuitous ARP request per IPv4 address and an
// unsolicited neighbour advertisement per IPv6 address, from a's link.
func (a *announcer) announce(addrs []netip.Addr) error {
	if a == nil {
		return nil
	}
	mac := a.mac
	for _, ip := range addrs {
		var frame []byte
		proto := uint16(unix.ETH_P_ARP)
		if ip.Is4() {
			frame = GratuitousARP(mac, ip)
		} else {
			frame, proto = UnsolicitedNA(mac, ip), unix.ETH_P_IPV6
		}
		to := &unix.SockaddrLinklayer{Protocol: htons(proto), Ifindex: a.ifindex, Halen: 6}
		copy(to.Addr[:], frame[0:6])
		if err := unix.Sendto(a.fd, frame, 0, to); err != nil {
			return fmt.Errorf("macvlan: announce %s on %q: %w", ip, a.ifname, err)
		}
	}
	return nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// GratuitousARP returns an Ethernet frame holding the ARP request a host
// with mac broadcasts to announce ip (sender and target IP both ip, as
// RFC 5227 section 3 and Linux's arp_notify do), padded to 60 bytes. It
// returns nil unless ip is IPv4 and mac has 6 bytes.
func GratuitousARP(mac net.HardwareAddr, ip netip.Addr) []byte {
	if !ip.Is4() {
		return nil
	}
	return arpRequest(mac, ip, ip, 60)
}

// UnsolicitedNA returns an Ethernet frame holding the unsolicited
// neighbour advertisement (RFC 4861 section 7.2.6: to all-nodes, override
// flag set, target link-layer address option) announcing ip at mac. It
// returns nil unless ip is IPv6 and mac has 6 bytes.
func UnsolicitedNA(mac net.HardwareAddr, ip netip.Addr) []byte {
	if !ip.Is6() || ip.Is4In6() || len(mac) != 6 {
		return nil
	}
	const icmpLen = 24 + 8
	f := make([]byte, 14+40+icmpLen)
	allNodes := netip.MustParseAddr("ff02::1").As16()
	copy(f[0:6], []byte{0x33, 0x33, 0, 0, 0, 1})
	copy(f[6:12], mac)
	binary.BigEndian.PutUint16(f[12:], unix.ETH_P_IPV6)
	ip6 := f[14:54]
	ip6[0] = 0x60
	binary.BigEndian.PutUint16(ip6[4:], icmpLen)
	ip6[6] = unix.IPPROTO_ICMPV6
	ip6[7] = 255 // hop limit, required by RFC 4861
	src := ip.As16()
	copy(ip6[8:24], src[:])
	copy(ip6[24:40], allNodes[:])
	icmp := f[54:]
	icmp[0] = 136                                    // neighbour advertisement
	binary.BigEndian.PutUint32(icmp[4:], 0x20000000) // override
	copy(icmp[8:24], src[:])
	icmp[24], icmp[25] = 2, 1 // target link-layer address, 8 bytes
	copy(icmp[26:32], mac)
	binary.BigEndian.PutUint16(icmp[2:], icmpv6Checksum(src, allNodes, icmp))
	return f
}

// icmpv6Checksum computes the ICMPv6 checksum over the IPv6 pseudo-header
// and msg (whose checksum field must be zero).
func icmpv6Checksum(src, dst [16]byte, msg []byte) uint16 {
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(b[i])<<8 | uint32(b[i+1])
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	add(src[:])
	add(dst[:])
	var tail [8]byte
	binary.BigEndian.PutUint32(tail[0:], uint32(len(msg)))
	tail[7] = unix.IPPROTO_ICMPV6
	add(tail[:])
	add(msg)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
