package macvlan

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
)

// The frames' peer-side proof (Linux hosts answer them) is in
// doctor/doctor_test.go; these tests pin their fields.

var probeMAC = net.HardwareAddr{0x02, 0x11, 0x22, 0x33, 0x44, 0x55}

func TestARPProbe(t *testing.T) {
	target := netip.MustParseAddr("192.0.2.1")
	for _, size := range []int{0, 60, 1514} {
		f := ARPProbe(probeMAC, target, size)
		if want := max(size, 60); len(f) != want {
			t.Fatalf("size %d: len %d, want %d", size, len(f), want)
		}
		arp := f[14:]
		switch {
		case !bytes.Equal(f[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}) || !bytes.Equal(f[6:12], probeMAC):
			t.Errorf("ethernet header % x", f[:14])
		case binary.BigEndian.Uint16(arp[6:]) != 1 || !bytes.Equal(arp[8:14], probeMAC):
			t.Errorf("not a request from the MAC: % x", arp[:28])
		case !bytes.Equal(arp[14:18], []byte{0, 0, 0, 0}) || !bytes.Equal(arp[24:28], []byte{192, 0, 2, 1}):
			t.Errorf("sender IP % x, target % x; want 0.0.0.0 and 192.0.2.1 (RFC 5227 probe)", arp[14:18], arp[24:28])
		}
	}
	if ARPProbe(probeMAC, netip.MustParseAddr("fd00::1"), 60) != nil || ARPProbe(nil, target, 60) != nil {
		t.Error("ARPProbe built a frame for an IPv6 target or without a MAC")
	}
}

func TestParseARPReply(t *testing.T) {
	gwMAC := net.HardwareAddr{0x52, 0x54, 0, 0, 0, 1}
	f := GratuitousARP(gwMAC, netip.MustParseAddr("192.0.2.1"))
	binary.BigEndian.PutUint16(f[14+6:], 2) // reply
	copy(f[14+18:14+24], probeMAC)
	ip, from, to, ok := ParseARPReply(f)
	if !ok || ip != netip.MustParseAddr("192.0.2.1") || from.String() != gwMAC.String() || to.String() != probeMAC.String() {
		t.Errorf("ParseARPReply = %s, %s, %s, %v", ip, from, to, ok)
	}
	if _, _, _, ok := ParseARPReply(ARPProbe(probeMAC, ip, 60)); ok {
		t.Error("a request parsed as a reply")
	}
	if _, _, _, ok := ParseARPReply(f[:30]); ok {
		t.Error("a truncated frame parsed")
	}
}

func TestDADSolicitation(t *testing.T) {
	target := netip.MustParseAddr("fd00::12:3456")
	f := DADSolicitation(probeMAC, target)
	ip6, icmp := f[14:54], f[54:]
	group := netip.MustParseAddr("ff02::1:ff12:3456").As16()
	switch {
	case !bytes.Equal(f[0:6], []byte{0x33, 0x33, 0xff, 0x12, 0x34, 0x56}):
		t.Errorf("destination MAC % x, want the solicited-node group's", f[0:6])
	case !bytes.Equal(ip6[8:24], make([]byte, 16)) || !bytes.Equal(ip6[24:40], group[:]):
		t.Errorf("source % x, destination % x; want :: and ff02::1:ff12:3456", ip6[8:24], ip6[24:40])
	case ip6[7] != 255 || icmp[0] != 135 || len(icmp) != 24:
		t.Errorf("hop limit %d, type %d, length %d; want 255, 135, 24 (no options from ::)", ip6[7], icmp[0], len(icmp))
	}
	sum := binary.BigEndian.Uint16(icmp[2:])
	msg := append([]byte(nil), icmp...)
	msg[2], msg[3] = 0, 0
	if want := icmpv6Checksum([16]byte{}, group, msg); sum != want {
		t.Errorf("checksum %#04x, want %#04x", sum, want)
	}
	if DADSolicitation(probeMAC, netip.MustParseAddr("192.0.2.1")) != nil {
		t.Error("DADSolicitation built a frame for an IPv4 target")
	}
}

func TestParseNA(t *testing.T) {
	ip := netip.MustParseAddr("fd00::fe")
	target, mac, ok := ParseNA(UnsolicitedNA(probeMAC, ip))
	if !ok || target != ip || mac.String() != probeMAC.String() {
		t.Errorf("ParseNA = %s, %s, %v; want %s, %s", target, mac, ok, ip, probeMAC)
	}
	if _, _, ok := ParseNA(DADSolicitation(probeMAC, ip)); ok {
		t.Error("a solicitation parsed as an advertisement")
	}
}

func FuzzParseARPReply(f *testing.F) {
	f.Add(GratuitousARP(probeMAC, netip.MustParseAddr("192.0.2.1")))
	f.Fuzz(func(t *testing.T, frame []byte) {
		ip, from, to, ok := ParseARPReply(frame)
		if ok && (!ip.Is4() || len(from) != 6 || len(to) != 6) {
			t.Errorf("ParseARPReply = %s, %s, %s", ip, from, to)
		}
	})
}

func FuzzParseNA(f *testing.F) {
	f.Add(UnsolicitedNA(probeMAC, netip.MustParseAddr("fd00::1")))
	f.Fuzz(func(t *testing.T, frame []byte) {
		ip, mac, ok := ParseNA(frame)
		if ok && (!ip.Is6() || len(mac) != 6) {
			t.Errorf("ParseNA = %s, %s", ip, mac)
		}
	})
}
