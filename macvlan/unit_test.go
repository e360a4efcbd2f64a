package macvlan

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"testing"
)

func TestParseMode(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Mode
		wantErr bool
	}{
		{"", ModeBridge, false},
		{"bridge", ModeBridge, false},
		{"private", ModePrivate, false},
		{"vepa", ModeVEPA, false},
		{"passthru", ModePassthru, false},
		{"Bridge", "", true},
		{"source", "", true},
	} {
		got, err := ParseMode(tc.in)
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("ParseMode(%q) = %q, %v; want %q, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
		if err != nil && !errors.Is(err, ErrInvalidSpec) {
			t.Errorf("ParseMode(%q) error %v does not wrap ErrInvalidSpec", tc.in, err)
		}
	}
}

func FuzzParseMode(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseMode(s)
		if err != nil {
			return
		}
		if _, err := m.netlink(); err != nil {
			t.Errorf("ParseMode(%q) = %q, which netlink() rejects: %v", s, m, err)
		}
		if m2, _ := ParseMode(string(m)); m2 != m {
			t.Errorf("ParseMode not idempotent: %q -> %q -> %q", s, m, m2)
		}
	})
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"empty", Config{}, true},
		{"dual stack", Config{Addresses: []netip.Prefix{netip.MustParsePrefix("10.0.0.2/24"), netip.MustParsePrefix("fd00::2/64")},
			Gateways: []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("fd00::1")}}, true},
		{"invalid address", Config{Addresses: []netip.Prefix{{}}}, false},
		{"two v4 gateways", Config{Gateways: []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")}}, false},
		{"mapped gateway", Config{Gateways: []netip.Addr{netip.MustParseAddr("::ffff:10.0.0.1")}}, false},
		{"route family mix", Config{Routes: []Route{{Dst: netip.MustParsePrefix("10.1.0.0/16"), Gw: netip.MustParseAddr("fd00::1")}}}, false},
		{"route invalid dst", Config{Routes: []Route{{}}}, false},
	} {
		err := tc.cfg.validate()
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrInvalidSpec)) {
			t.Errorf("%s: validate() = %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}

func TestSpecValidate(t *testing.T) {
	mac := func(s string) net.HardwareAddr { m, _ := net.ParseMAC(s); return m }
	for _, tc := range []struct {
		name string
		spec Spec
		ok   bool
	}{
		{"defaults", Spec{}, true},
		{"mtu max", Spec{MTU: 1500}, true},
		{"mtu min", Spec{MTU: 68}, true},
		{"mtu above master", Spec{MTU: 1501}, false},
		{"mtu negative", Spec{MTU: -5}, false},
		{"unicast mac", Spec{MAC: mac("02:00:00:00:00:01")}, true},
		{"multicast mac", Spec{MAC: mac("01:00:00:00:00:01")}, false},
		{"zero mac", Spec{MAC: mac("00:00:00:00:00:00")}, false},
		{"long mac", Spec{MAC: mac("02:00:00:00:00:00:00:01")}, false},
		{"bad mode", Spec{Mode: "x"}, false},
	} {
		err := tc.spec.validate(1500)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrInvalidSpec)) {
			t.Errorf("%s: validate() = %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}

func TestGratuitousARP(t *testing.T) {
	mac, _ := net.ParseMAC("02:42:0a:00:00:05")
	f := GratuitousARP(mac, netip.MustParseAddr("10.0.0.5"))
	want := []byte{
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x42, 0x0a, 0, 0, 5, 0x08, 0x06, // Ethernet
		0, 1, 8, 0, 6, 4, 0, 1, // Ethernet/IPv4, request
		0x02, 0x42, 0x0a, 0, 0, 5, 10, 0, 0, 5, // sender
		0, 0, 0, 0, 0, 0, 10, 0, 0, 5, // target
	}
	if len(f) != 60 {
		t.Fatalf("len = %d, want 60", len(f))
	}
	if got := f[:len(want)]; string(got) != string(want) {
		t.Errorf("frame =\n% x\nwant\n% x", got, want)
	}
	if GratuitousARP(mac, netip.MustParseAddr("fd00::1")) != nil {
		t.Errorf("GratuitousARP(IPv6) != nil")
	}
}

func TestUnsolicitedNA(t *testing.T) {
	mac, _ := net.ParseMAC("02:42:0a:00:00:05")
	ip := netip.MustParseAddr("fd00::5")
	f := UnsolicitedNA(mac, ip)
	if len(f) != 86 {
		t.Fatalf("len = %d, want 86", len(f))
	}
	for _, c := range []struct {
		what      string
		got, want any
	}{
		{"eth dst", net.HardwareAddr(f[0:6]).String(), "33:33:00:00:00:01"},
		{"ethertype", binary.BigEndian.Uint16(f[12:]), uint16(0x86dd)},
		{"hop limit", f[21], byte(255)},
		{"icmp type", f[54], byte(136)},
		{"flags", binary.BigEndian.Uint32(f[58:]), uint32(0x20000000)},
		{"target", netip.AddrFrom16([16]byte(f[62:78])), ip},
		{"option", [2]byte(f[78:80]), [2]byte{2, 1}},
		{"lladdr", net.HardwareAddr(f[80:86]).String(), mac.String()},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
		}
	}
	// A correct checksum makes the sum over pseudo-header and message 0.
	if sum := icmpv6Checksum([16]byte(f[22:38]), [16]byte(f[38:54]), f[54:]); sum != 0 {
		t.Errorf("checksum does not verify: residual %#04x", sum)
	}
	if UnsolicitedNA(mac, netip.MustParseAddr("10.0.0.1")) != nil {
		t.Errorf("UnsolicitedNA(IPv4) != nil")
	}
}
