package macvlan

import (
	"encoding/binary"
	"net"
	"net/netip"

	"golang.org/x/sys/unix"
)

// ARPProbe returns an Ethernet frame holding an RFC 5227 ARP probe from
// mac for target: a broadcast request with sender IP 0.0.0.0, so no host
// that sees it adds or changes a cache entry. Hosts owning target answer
// it (RFC 5227 section 2.1.1; Linux does in arp_process). size is the
// frame length without FCS: at least 60 (the Ethernet minimum), larger to
// pad the frame up to a link's MTU plus 14. It returns nil unless target
// is IPv4 and mac has 6 bytes.
func ARPProbe(mac net.HardwareAddr, target netip.Addr, size int) []byte {
	if !target.Is4() {
		return nil
	}
	// Sender IP 0.0.0.0 (the zero Addr), target hardware address zero.
	return arpRequest(mac, netip.Addr{}, target, size)
}

// arpRequest returns an Ethernet frame of at least 60 bytes (size when
// larger) holding a broadcast ARP request from mac, with sender IP sender
// (0.0.0.0 when not valid) for target. nil unless mac has 6 bytes. The
// target hardware address stays zero.
func arpRequest(mac net.HardwareAddr, sender, target netip.Addr, size int) []byte {
	if len(mac) != 6 {
		return nil
	}
	f := make([]byte, max(size, 60))
	copy(f[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	copy(f[6:12], mac)
	binary.BigEndian.PutUint16(f[12:], unix.ETH_P_ARP)
	arp := f[14:]
	binary.BigEndian.PutUint16(arp[0:], 1)      // hardware: Ethernet
	binary.BigEndian.PutUint16(arp[2:], 0x0800) // protocol: IPv4
	arp[4], arp[5] = 6, 4
	binary.BigEndian.PutUint16(arp[6:], 1) // request
	copy(arp[8:14], mac)
	if sender.Is4() {
		s4 := sender.As4()
		copy(arp[14:18], s4[:])
	}
	t4 := target.As4()
	copy(arp[24:28], t4[:])
	return f
}

// ParseARPReply reads an Ethernet frame and, when it is an ARP reply,
// returns the sender's IP and MAC and the target MAC it was sent to.
func ParseARPReply(frame []byte) (sender netip.Addr, senderMAC, targetMAC net.HardwareAddr, ok bool) {
	if len(frame) < 42 || binary.BigEndian.Uint16(frame[12:]) != unix.ETH_P_ARP {
		return netip.Addr{}, nil, nil, false
	}
	arp := frame[14:]
	if binary.BigEndian.Uint16(arp[0:]) != 1 || binary.BigEndian.Uint16(arp[2:]) != 0x0800 ||
		arp[4] != 6 || arp[5] != 4 || binary.BigEndian.Uint16(arp[6:]) != 2 {
		return netip.Addr{}, nil, nil, false
	}
	sender = netip.AddrFrom4([4]byte(arp[14:18]))
	return sender, net.HardwareAddr(clone(arp[8:14])), net.HardwareAddr(clone(arp[18:24])), true
}

// DADSolicitation returns an Ethernet frame holding the neighbour
// solicitation of IPv6 duplicate address detection (RFC 4862 section
// 5.4.2) from mac for target: source ::, to target's solicited-node
// multicast group, no source link-layer option. A node owning target
// answers with a neighbour advertisement to all-nodes (RFC 4861 section
// 7.2.4), and nobody learns a neighbour entry from it. It returns nil
// unless target is IPv6 and mac has 6 bytes.
func DADSolicitation(mac net.HardwareAddr, target netip.Addr) []byte {
	if !target.Is6() || target.Is4In6() || len(mac) != 6 {
		return nil
	}
	const icmpLen = 24
	f := make([]byte, 14+40+icmpLen)
	t := target.As16()
	var group [16]byte
	copy(group[:], []byte{0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff})
	copy(group[13:], t[13:])
	copy(f[0:6], []byte{0x33, 0x33, group[12], group[13], group[14], group[15]})
	copy(f[6:12], mac)
	binary.BigEndian.PutUint16(f[12:], unix.ETH_P_IPV6)
	ip6 := f[14:54]
	ip6[0] = 0x60
	binary.BigEndian.PutUint16(ip6[4:], icmpLen)
	ip6[6] = unix.IPPROTO_ICMPV6
	ip6[7] = 255 // hop limit, required by RFC 4861
	// source :: stays zero
	copy(ip6[24:40], group[:])
	icmp := f[54:]
	icmp[0] = 135 // neighbour solicitation
	copy(icmp[8:24], t[:])
	binary.BigEndian.PutUint16(icmp[2:], icmpv6Checksum([16]byte{}, group, icmp))
	return f
}

// ParseNA reads an Ethernet frame and, when it is an ICMPv6 neighbour
// advertisement, returns its target address and the frame's source MAC
// (the target link-layer option's, when present).
func ParseNA(frame []byte) (target netip.Addr, mac net.HardwareAddr, ok bool) {
	if len(frame) < 14+40+24 || binary.BigEndian.Uint16(frame[12:]) != unix.ETH_P_IPV6 {
		return netip.Addr{}, nil, false
	}
	ip6 := frame[14:54]
	if ip6[0]>>4 != 6 || ip6[6] != unix.IPPROTO_ICMPV6 || ip6[7] != 255 {
		return netip.Addr{}, nil, false
	}
	icmp := frame[54:]
	if icmp[0] != 136 {
		return netip.Addr{}, nil, false
	}
	target = netip.AddrFrom16([16]byte(icmp[8:24]))
	mac = clone(frame[6:12])
	for opts := icmp[24:]; len(opts) >= 8 && opts[1] > 0 && len(opts) >= int(opts[1])*8; opts = opts[int(opts[1])*8:] {
		if opts[0] == 2 && opts[1] == 1 {
			mac = clone(opts[2:8])
		}
	}
	return target, mac, true
}

func clone(b []byte) net.HardwareAddr { return append(net.HardwareAddr(nil), b...) }
