package etcdstore

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/medianet/medianet/ipam"
)

func TestBlockMath(t *testing.T) {
	tests := []struct {
		subnet string
		bits   int
		i      uint64
		want   string
		count  uint64
	}{
		{"10.0.0.0/16", 26, 0, "10.0.0.0/26", 1024},
		{"10.0.0.0/16", 26, 5, "10.0.1.64/26", 1024},
		{"10.0.0.0/16", 26, 1023, "10.0.255.192/26", 1024},
		{"192.168.100.0/24", 32, 200, "192.168.100.200/32", 256},
		{"fd00::/64", 120, 0, "fd00::/120", 1 << 56},
		{"fd00::/64", 120, 1<<56 - 1, "fd00::ffff:ffff:ffff:ff00/120", 1 << 56},
		{"fd00:1::/48", 112, 0x10001, "fd00:1::1:1:0/112", 1 << 63},
	}
	for _, tt := range tests {
		s := Subnet{Prefix: netip.MustParsePrefix(tt.subnet), BlockBits: tt.bits}
		if tt.bits-s.Prefix.Bits() < 64 {
			if got := s.count(); got != tt.count && tt.bits-s.Prefix.Bits() < 63 {
				t.Errorf("%s /%d: count got %d, want %d", tt.subnet, tt.bits, got, tt.count)
			}
		}
		got := s.at(tt.i)
		if got.String() != tt.want {
			t.Errorf("%s /%d: block %d got %s, want %s", tt.subnet, tt.bits, tt.i, got, tt.want)
		}
		if idx := s.index(got.Addr()); idx != tt.i {
			t.Errorf("%s /%d: index(%s) got %d, want %d", tt.subnet, tt.bits, got, idx, tt.i)
		}
		if idx := s.index(lastAddrOf(got)); idx != tt.i {
			t.Errorf("%s /%d: index(last of %s) got %d, want %d", tt.subnet, tt.bits, got, idx, tt.i)
		}
	}
}

func lastAddrOf(p netip.Prefix) netip.Addr {
	a := p.Addr().AsSlice()
	host := p.Addr().BitLen() - p.Bits()
	for i := len(a) - 1; host > 0; i-- {
		n := min(host, 8)
		a[i] |= byte(1<<n - 1)
		host -= n
	}
	out, _ := netip.AddrFromSlice(a)
	return out
}

func TestWalk(t *testing.T) {
	s := Subnet{Prefix: netip.MustParsePrefix("10.0.0.0/24"), BlockBits: 28} // 16 blocks
	tests := []struct {
		name    string
		exclude []string
		from    uint64
		skip    []string
		want    string // "" = none
	}{
		{"first", nil, 0, nil, "10.0.0.0/28"},
		{"from seed", nil, 3, nil, "10.0.0.48/28"},
		{"skip held", nil, 3, []string{"10.0.0.48/28", "10.0.0.64/28"}, "10.0.0.80/28"},
		{"wrap", nil, 15, []string{"10.0.0.240/28"}, "10.0.0.0/28"},
		{"exclude jump", []string{"10.0.0.0/25"}, 2, nil, "10.0.0.128/28"},
		{"exclude partial block is not skipped", []string{"10.0.0.1/32"}, 0, nil, "10.0.0.0/28"},
		{"exclude wraps", []string{"10.0.0.128/25"}, 9, nil, "10.0.0.0/28"},
		{"all excluded", []string{"10.0.0.0/16"}, 0, nil, ""},
		{"all skipped but one", []string{"10.0.0.0/25"}, 8, []string{"10.0.0.128/28", "10.0.0.144/28", "10.0.0.160/28", "10.0.0.176/28", "10.0.0.192/28", "10.0.0.208/28", "10.0.0.224/28"}, "10.0.0.240/28"},
		{"full", []string{"10.0.0.0/25"}, 8, []string{"10.0.0.128/28", "10.0.0.144/28", "10.0.0.160/28", "10.0.0.176/28", "10.0.0.192/28", "10.0.0.208/28", "10.0.0.224/28", "10.0.0.240/28"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := Network{Name: "n", Subnets: []Subnet{s}}
			for _, e := range tt.exclude {
				n.Exclude = append(n.Exclude, netip.MustParsePrefix(e))
			}
			skip := map[netip.Prefix]bool{}
			for _, b := range tt.skip {
				skip[netip.MustParsePrefix(b)] = true
			}
			got, ok := n.walk(s, tt.from, func(b netip.Prefix) bool { return skip[b] })
			if tt.want == "" {
				if ok {
					t.Fatalf("got %s, want none", got)
				}
				return
			}
			if !ok || got.String() != tt.want {
				t.Fatalf("got %s (%v), want %s", got, ok, tt.want)
			}
		})
	}
}

func TestNetworkValidate(t *testing.T) {
	p := netip.MustParsePrefix
	tests := []struct {
		name string
		n    Network
		want string // substring of the error; "" = valid
	}{
		{"ok v4", Network{Name: "media", Subnets: []Subnet{{p("10.0.0.0/16"), 26}}}, ""},
		{"ok dual", Network{Name: "media", Subnets: []Subnet{{p("10.0.0.0/16"), 26}, {p("fd00::/64"), 120}}}, ""},
		{"empty name", Network{Subnets: []Subnet{{p("10.0.0.0/16"), 26}}}, "network name"},
		{"slash in name", Network{Name: "a/b", Subnets: []Subnet{{p("10.0.0.0/16"), 26}}}, "network name"},
		{"no subnet", Network{Name: "media"}, "no subnet"},
		{"host bits", Network{Name: "media", Subnets: []Subnet{{p("10.0.0.1/16"), 26}}}, "host bits"},
		{"block shorter than subnet", Network{Name: "media", Subnets: []Subnet{{p("10.0.0.0/16"), 8}}}, "blockSize /8"},
		{"block too big", Network{Name: "media", Subnets: []Subnet{{p("10.0.0.0/8"), 12}}}, "blockSize /12"},
		{"v6 too many blocks", Network{Name: "media", Subnets: []Subnet{{p("fd00::/32"), 120}}}, "blockSize /120"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.n.validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("got %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, ErrConfig) {
				t.Fatalf("got %v, want an ErrConfig naming %q", err, tt.want)
			}
		})
	}
}

func TestRecordCanonical(t *testing.T) {
	p := netip.MustParsePrefix
	a := Network{Name: "m", Subnets: []Subnet{{p("10.0.0.0/16"), 26}, {p("fd00::/64"), 120}}}
	b := Network{Name: "m", Subnets: []Subnet{{p("fd00::/64"), 120}, {p("10.0.0.0/16"), 26}}}
	if a.recordJSON() != b.recordJSON() {
		t.Errorf("subnet order changes the record: %s vs %s", a.recordJSON(), b.recordJSON())
	}
	c := Network{Name: "m", Subnets: []Subnet{{p("10.0.0.0/16"), 27}, {p("fd00::/64"), 120}}}
	if a.recordJSON() == c.recordJSON() {
		t.Errorf("block size not in the record: %s", a.recordJSON())
	}
	if got, want := describeRecord(a.recordJSON()), "subnet 10.0.0.0/16 blockSize 26, subnet fd00::/64 blockSize 120"; got != want {
		t.Errorf("describe: got %q, want %q", got, want)
	}
}

func TestBlockName(t *testing.T) {
	for _, s := range []string{"10.0.0.64/26", "fd00::100/120", "192.168.1.1/32", "::/0"} {
		b := netip.MustParsePrefix(s)
		got, err := parseBlockName(blockName(b))
		if err != nil || got != b {
			t.Errorf("%s: round trip got %s, %v", s, got, err)
		}
		if strings.Contains(blockName(b), "/") {
			t.Errorf("%s: key segment %q contains /", s, blockName(b))
		}
	}
}

func FuzzParseBlockName(f *testing.F) {
	for _, s := range []string{"10.0.0.64-26", "fd00::100-120", "x-1", "-", "1.2.3.4-"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := parseBlockName(s)
		if err != nil {
			return
		}
		if got, err := parseBlockName(blockName(b)); err != nil || got != b {
			t.Fatalf("%q -> %s: round trip got %s, %v", s, b, got, err)
		}
	})
}

func TestConfigDefaults(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string // error substring; "" = valid
	}{
		{"ok", Config{Endpoints: []string{"http://127.0.0.1:2379"}}, ""},
		{"no endpoints", Config{}, "endpoints"},
		{"bad scheme", Config{Endpoints: []string{"127.0.0.1:2379"}}, `endpoint "127.0.0.1:2379"`},
		{"prefix", Config{Endpoints: []string{"http://h:1"}, Prefix: "medianet"}, "prefix"},
		{"cert without key", Config{Endpoints: []string{"https://h:1"}, CertFile: "c.pem"}, "keyFile"},
		{"user without password", Config{Endpoints: []string{"http://h:1"}, Username: "u"}, "password"},
		{"missing ca", Config{Endpoints: []string{"https://h:1"}, CAFile: "/nonexistent/ca.pem"}, "caFile"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(tt.cfg)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("got %v", err)
				}
				if got := c.Config(); got.Prefix != DefaultPrefix || got.RequestTimeout != DefaultRequestTimeout {
					t.Errorf("defaults: got prefix %q timeout %v", got.Prefix, got.RequestTimeout)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want ErrConfig naming %q", err, tt.want)
			}
		})
	}
}

func TestBadTLSFileFailsOnFirstUse(t *testing.T) {
	dir := t.TempDir()
	bad := dir + "/ca.pem"
	if err := os.WriteFile(bad, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := New(Config{Endpoints: []string{"https://127.0.0.1:1"}, CAFile: bad})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	n := Network{Name: "m", Subnets: []Subnet{{netip.MustParsePrefix("10.0.0.0/24"), 28}}}
	_, err = c.ClaimNext(context.Background(), n, "a", n.Subnets[0].Prefix, ipam.Held{})
	if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "caFile") {
		t.Fatalf("got %v, want ErrConfig naming caFile", err)
	}
}
