package ipam

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func pfx(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func sub(p, gw string) Subnet {
	s := Subnet{Prefix: netip.MustParsePrefix(p)}
	if gw != "" {
		s.Gateway = netip.MustParseAddr(gw)
	}
	return s
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		err  string // "" means valid
		is   error
	}{
		{"v4 ok", Config{Network: "m", Subnets: []Subnet{sub("192.168.100.0/24", "192.168.100.254")}}, "", nil},
		{"v6 ok", Config{Network: "m", Subnets: []Subnet{sub("fd00::/64", "")}}, "", nil},
		{"dual ok", Config{Network: "m", Subnets: []Subnet{sub("10.0.0.0/24", ""), sub("fd00::/120", "")}}, "", nil},
		{"no name", Config{Subnets: []Subnet{sub("10.0.0.0/24", "")}}, "network name", ErrConfig},
		{"no subnet", Config{Network: "m"}, "no subnet", ErrConfig},
		{"gw outside", Config{Network: "m", Subnets: []Subnet{sub("192.168.100.0/24", "10.0.0.1")}}, "gateway 10.0.0.1 is outside subnet 192.168.100.0/24", ErrConfig},
		{"gw outside v6", Config{Network: "m", Subnets: []Subnet{sub("fd00::/64", "fd01::1")}}, "gateway fd01::1 is outside", ErrConfig},
		{"host bits", Config{Network: "m", Subnets: []Subnet{{Prefix: netip.MustParsePrefix("10.0.0.5/24")}}}, "did you mean 10.0.0.0/24", ErrConfig},
		{"subnets overlap", Config{Network: "m", Subnets: []Subnet{sub("10.0.0.0/16", ""), sub("10.0.1.0/24", "")}}, "subnet 10.0.1.0/24 overlaps subnet 10.0.0.0/16", ErrOverlap},
		{"excluded all", Config{Network: "m", Subnets: []Subnet{sub("10.0.0.0/28", "")}, Exclude: pfx("10.0.0.0/29", "10.0.0.8/29")}, "no usable address", ErrConfig},
		{"excluded all but one", Config{Network: "m", Subnets: []Subnet{sub("10.0.0.0/28", "")}, Exclude: pfx("10.0.0.0/29", "10.0.0.8/30", "10.0.0.13/32")}, "", nil},
		{"v6 excluded all", Config{Network: "m", Subnets: []Subnet{sub("fd00::/120", "")}, Exclude: pfx("fd00::/120")}, "no usable address", ErrConfig},
		{"blockSize range", Config{Network: "m", Subnets: []Subnet{sub("10.0.0.0/24", "")}, BlockSize: 40}, "blockSize 40", ErrConfig},
		{"v6 block too big", Config{Network: "m", Subnets: []Subnet{sub("fd00::/64", "")}, BlockSize6: 100}, "blockSize6 100", ErrConfig},
		{"v6 blockSize alone", Config{Network: "m", Subnets: []Subnet{sub("fd00::/64", "")}, BlockSize: 118}, "", nil},
		{"ranges ok", Config{Network: "m", Node: "a", Subnets: []Subnet{sub("10.0.0.0/24", "")},
			NodeRanges: map[string][]netip.Prefix{"a": pfx("10.0.0.0/28"), "b": pfx("10.0.0.16/28")}}, "", nil},
		{"ranges overlap", Config{Network: "m", Node: "a", Subnets: []Subnet{sub("10.0.0.0/24", "")},
			NodeRanges: map[string][]netip.Prefix{"a": pfx("10.0.0.0/27"), "b": pfx("10.0.0.16/28")}},
			`10.0.0.0/27 of node "a" overlaps 10.0.0.16/28 of node "b"`, ErrOverlap},
		{"ranges overlap v6", Config{Network: "m", Node: "a", Subnets: []Subnet{sub("fd00::/64", "")},
			NodeRanges: map[string][]netip.Prefix{"a": pfx("fd00::/120"), "b": pfx("fd00::80/121")}},
			`fd00::/120 of node "a" overlaps fd00::80/121 of node "b"`, ErrOverlap},
		{"range outside", Config{Network: "m", Node: "a", Subnets: []Subnet{sub("10.0.0.0/24", "")},
			NodeRanges: map[string][]netip.Prefix{"a": pfx("10.0.1.0/28")}}, `nodeRanges["a"]: 10.0.1.0/28 is outside`, ErrConfig},
		// A node removed from nodeRanges keeps a valid config: it must
		// still DEL and GC what it holds (ADD fails, see the allocator).
		{"node missing", Config{Network: "m", Node: "c", Subnets: []Subnet{sub("10.0.0.0/24", "")},
			NodeRanges: map[string][]netip.Prefix{"a": pfx("10.0.0.0/28")}}, "", nil},
		{"sticky negative", Config{Network: "m", Subnets: []Subnet{sub("10.0.0.0/24", "")}, Sticky: -1}, "sticky -1ns: must not be negative", ErrConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.err == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) || !errors.Is(err, tt.is) || !errors.Is(err, ErrConfig) {
				t.Fatalf("Validate() = %v, want error containing %q wrapping %v and ErrConfig", err, tt.err, tt.is)
			}
		})
	}
}

func TestBlockBits(t *testing.T) {
	tests := []struct {
		cfg    Config
		subnet string
		want   int
	}{
		{Config{}, "10.0.0.0/16", 26},
		{Config{}, "10.0.0.0/28", 28},
		{Config{BlockSize: 28}, "10.0.0.0/16", 28},
		{Config{}, "fd00::/64", 120},
		{Config{BlockSize6: 124}, "fd00::/64", 124},
		{Config{BlockSize: 116, Subnets: []Subnet{sub("fd00::/64", "")}}, "fd00::/64", 116},
		{Config{BlockSize: 28, Subnets: []Subnet{sub("10.0.0.0/24", ""), sub("fd00::/64", "")}}, "fd00::/64", 120},
	}
	for _, tt := range tests {
		if got := tt.cfg.BlockBits(netip.MustParsePrefix(tt.subnet)); got != tt.want {
			t.Errorf("BlockBits(%s) with %+v = %d, want %d", tt.subnet, tt.cfg, got, tt.want)
		}
	}
}

func TestStaticSourceNext(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		src    StaticSource
		subnet string
		bits   int
		held   []string
		want   string // "" means exhausted
	}{
		{"first", StaticSource{NodeRanges: pfx("10.0.0.0/24")}, "10.0.0.0/16", 26, nil, "10.0.0.0/26"},
		{"skip held", StaticSource{NodeRanges: pfx("10.0.0.0/24")}, "10.0.0.0/16", 26, []string{"10.0.0.0/26"}, "10.0.0.64/26"},
		{"next range", StaticSource{NodeRanges: pfx("10.0.0.0/26", "10.0.1.0/26")}, "10.0.0.0/16", 26, []string{"10.0.0.0/26"}, "10.0.1.0/26"},
		{"exhausted", StaticSource{NodeRanges: pfx("10.0.0.0/26")}, "10.0.0.0/16", 26, []string{"10.0.0.0/26"}, ""},
		{"other subnet ignored", StaticSource{NodeRanges: pfx("10.0.0.0/26", "fd00::/120")}, "fd00::/64", 120, nil, "fd00::/120"},
		{"range smaller than block", StaticSource{NodeRanges: pfx("10.0.0.16/28")}, "10.0.0.0/24", 26, nil, "10.0.0.16/28"},
		{"excluded jumped", StaticSource{NodeRanges: pfx("fd00::/64"), Exclude: pfx("fd00::/72")}, "fd00::/64", 120, nil, "fd00::100:0:0:0/120"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ps []netip.Prefix
			for _, h := range tt.held {
				ps = append(ps, netip.MustParsePrefix(h))
			}
			held := NewHeld(ps...)
			got, err := tt.src.Next(ctx, netip.MustParsePrefix(tt.subnet), tt.bits, held)
			if tt.want == "" {
				if !errors.Is(err, ErrExhausted) {
					t.Fatalf("Next() = %s, %v, want ErrExhausted", got, err)
				}
				return
			}
			if err != nil || got.String() != tt.want {
				t.Fatalf("Next() = %s, %v, want %s", got, err, tt.want)
			}
		})
	}
}

func TestStaticSourceContaining(t *testing.T) {
	src := StaticSource{NodeRanges: pfx("10.0.0.0/27", "fd00::/120")}
	ctx := context.Background()
	got, err := src.Containing(ctx, netip.MustParsePrefix("10.0.0.0/24"), 28, netip.MustParseAddr("10.0.0.20"), Held{})
	if err != nil || got.String() != "10.0.0.16/28" {
		t.Errorf("Containing(10.0.0.20) = %s, %v, want 10.0.0.16/28", got, err)
	}
	_, err = src.Containing(ctx, netip.MustParsePrefix("10.0.0.0/24"), 28, netip.MustParseAddr("10.0.0.40"), Held{})
	if !errors.Is(err, ErrOutOfRange) || !strings.Contains(err.Error(), "10.0.0.0/27") {
		t.Errorf("Containing(10.0.0.40) error = %v, want ErrOutOfRange naming 10.0.0.0/27", err)
	}
}
