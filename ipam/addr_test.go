package ipam

import (
	"net/netip"
	"strings"
	"testing"
)

func TestLastAddrAndSize(t *testing.T) {
	tests := []struct {
		prefix, last string
		size         uint64
	}{
		{"192.168.100.0/24", "192.168.100.255", 256},
		{"10.0.0.0/8", "10.255.255.255", 1 << 24},
		{"10.1.2.3/32", "10.1.2.3", 1},
		{"0.0.0.0/0", "255.255.255.255", 1 << 32},
		{"fd00::/120", "fd00::ff", 256},
		{"fd00::/64", "fd00::ffff:ffff:ffff:ffff", ^uint64(0)},
		{"fd00::1/128", "fd00::1", 1},
		{"::/0", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", ^uint64(0)},
	}
	for _, tt := range tests {
		p := netip.MustParsePrefix(tt.prefix)
		if got := LastAddr(p).String(); got != tt.last {
			t.Errorf("LastAddr(%s) = %s, want %s", p, got, tt.last)
		}
		if got := Size(p); got != tt.size {
			t.Errorf("Size(%s) = %d, want %d", p, got, tt.size)
		}
	}
}

func TestOffset(t *testing.T) {
	tests := []struct {
		addr string
		n    uint64
		want string // "" means out of family
	}{
		{"10.0.0.255", 1, "10.0.1.0"},
		{"255.255.255.255", 1, ""},
		{"fd00::ffff:ffff:ffff:ffff", 1, "fd00:0:0:1::"},
		{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 1, ""},
		{"fd00::", 1 << 40, "fd00::100:0:0"},
	}
	for _, tt := range tests {
		got, ok := Offset(netip.MustParseAddr(tt.addr), tt.n)
		if tt.want == "" {
			if ok {
				t.Errorf("Offset(%s, %d) = %s, want out of range", tt.addr, tt.n, got)
			}
			continue
		}
		if !ok || got.String() != tt.want {
			t.Errorf("Offset(%s, %d) = %s, %t, want %s", tt.addr, tt.n, got, ok, tt.want)
		}
	}
}

func TestNetworkBroadcastGateway(t *testing.T) {
	tests := []struct {
		subnet   string
		reserved []string
		gateway  string
	}{
		{"192.168.100.0/24", []string{"192.168.100.0", "192.168.100.255"}, "192.168.100.1"},
		{"192.168.100.0/31", nil, "invalid IP"},
		{"192.168.100.7/32", nil, "invalid IP"},
		{"fd00:1::/64", []string{"fd00:1::"}, "fd00:1::1"},
		{"fd00:1::/127", nil, "invalid IP"},
	}
	for _, tt := range tests {
		p := netip.MustParsePrefix(tt.subnet)
		var got []string
		for _, a := range NetworkAndBroadcast(p) {
			got = append(got, a.String())
		}
		if strings.Join(got, ",") != strings.Join(tt.reserved, ",") {
			t.Errorf("NetworkAndBroadcast(%s) = %v, want %v", p, got, tt.reserved)
		}
		if got := DefaultGateway(p).String(); got != tt.gateway {
			t.Errorf("DefaultGateway(%s) = %s, want %s", p, got, tt.gateway)
		}
	}
}

func TestParseRange(t *testing.T) {
	tests := []struct {
		in, want, err string
	}{
		{"192.168.100.1", "192.168.100.1/32", ""},
		{" 192.168.100.2/31 ", "192.168.100.2/31", ""},
		{"fd00::5", "fd00::5/128", ""},
		{"fd00::/120", "fd00::/120", ""},
		{"::ffff:10.0.0.1", "10.0.0.1/32", ""},
		{"192.168.100.5/24", "", "host bits set; did you mean 192.168.100.0/24"},
		{"fd00::1/64", "", "did you mean fd00::/64"},
		{"192.168.100", "", "neither an address nor a prefix"},
		{"10.0.0.0/33", "", "not a prefix"},
		{"fe80::1%eth0", "", "zoned"},
		{"", "", "neither"},
	}
	for _, tt := range tests {
		got, err := ParseRange(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseRange(%q) error = %v, want one containing %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || got.String() != tt.want {
			t.Errorf("ParseRange(%q) = %s, %v, want %s", tt.in, got, err, tt.want)
		}
	}
}

func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"192.168.100.1", "10.0.0.0/8", "fd00::/120", "fd00::1", "1.2.3.4/33", "::ffff:1.2.3.4/120"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseRange(s)
		if err != nil {
			return
		}
		if !p.IsValid() || p.Masked() != p {
			t.Fatalf("ParseRange(%q) = %s: not a valid masked prefix", s, p)
		}
		back, err := ParseRange(p.String())
		if err != nil || back != p {
			t.Fatalf("ParseRange(%q) = %s, reparsed %s, %v", s, p, back, err)
		}
		if !Covers(p, p) || !p.Contains(LastAddr(p)) {
			t.Fatalf("%s does not cover itself or its last address %s", p, LastAddr(p))
		}
	})
}
