package dockerplugin

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/medianet/medianet/macvlan"
)

func TestParseNetOptions(t *testing.T) {
	for _, tc := range []struct {
		in      map[string]string
		want    netOptions
		wantErr string
	}{
		{map[string]string{"parent": "eth1"}, netOptions{Parent: "eth1", Mode: macvlan.ModeBridge}, ""},
		{map[string]string{"parent": "eth1", "macvlan_mode": "vepa", "vlan": "100", "com.docker.network.enable_ipv6": "true"},
			netOptions{Parent: "eth1", Mode: macvlan.ModeVEPA, VLAN: 100}, ""},
		{map[string]string{}, netOptions{}, "-o parent is required"},
		{map[string]string{"parent": "eth1", "vlan": "0"}, netOptions{}, "-o vlan"},
		{map[string]string{"parent": "eth1", "vlan": "x"}, netOptions{}, "-o vlan"},
		{map[string]string{"parent": "verylongname123", "vlan": "100"}, netOptions{}, "longer than 15"},
		{map[string]string{"parent": "eth1", "mode": "bridge"}, netOptions{}, "unknown option -o mode"},
	} {
		got, err := parseNetOptions(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, ErrBadOption) {
				t.Errorf("parseNetOptions(%v): err = %v, want ErrBadOption containing %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parseNetOptions(%v) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func TestParsePoolOptions(t *testing.T) {
	for _, tc := range []struct {
		in      map[string]string
		want    poolOptions
		wantErr string
	}{
		{nil, poolOptions{}, ""},
		{map[string]string{"block-size": "28", "node-ranges": "a=10.0.0.0/28, b=10.0.0.16/28,a=10.0.0.32/28"},
			poolOptions{BlockSize: 28, NodeRanges: map[string][]netip.Prefix{
				"a": {netip.MustParsePrefix("10.0.0.0/28"), netip.MustParsePrefix("10.0.0.32/28")},
				"b": {netip.MustParsePrefix("10.0.0.16/28")}}}, ""},
		{map[string]string{"block-size": "/120"}, poolOptions{BlockSize: 120}, ""},
		{map[string]string{"block-size": "0"}, poolOptions{}, "block-size"},
		{map[string]string{"node-ranges": "a=10.0.0.1/28"}, poolOptions{}, "node-ranges"},
		{map[string]string{"node-ranges": "=10.0.0.0/28"}, poolOptions{}, "node-ranges"},
		{map[string]string{"node-ranges": ""}, poolOptions{}, "node-ranges"},
		{map[string]string{"nodes": "a"}, poolOptions{}, "--ipam-opt nodes"},
		{map[string]string{"conflict-check": "0"}, poolOptions{ConflictCheck: new(time.Duration)}, ""},
		{map[string]string{"conflict-check": "300ms", "conflict-retry": "1h"}, poolOptions{ConflictCheck: durationPtr(300 * time.Millisecond), ConflictRetry: time.Hour}, ""},
		{map[string]string{"conflict-check": "-1s"}, poolOptions{}, "conflict-check"},
		{map[string]string{"conflict-check": "1m"}, poolOptions{}, "conflict-check"},
		{map[string]string{"conflict-retry": "100ms"}, poolOptions{}, "conflict-retry"},
	} {
		got, err := parsePoolOptions(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, ErrBadOption) {
				t.Errorf("parsePoolOptions(%v): err = %v, want ErrBadOption containing %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("parsePoolOptions(%v) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func durationPtr(d time.Duration) *time.Duration { return &d }

// splitOptions turns "k=v;k=v" into a map, for the fuzzers.
func splitOptions(s string) map[string]string {
	m := map[string]string{}
	for kv := range strings.SplitSeq(s, ";") {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

func FuzzParseNetOptions(f *testing.F) {
	f.Add("parent=eth1;vlan=100;macvlan_mode=bridge")
	f.Fuzz(func(t *testing.T, s string) {
		o, err := parseNetOptions(splitOptions(s))
		if err != nil {
			if !errors.Is(err, ErrBadOption) {
				t.Fatalf("error %v does not wrap ErrBadOption", err)
			}
			return
		}
		if o.Parent == "" || len(o.master()) > 15 || o.Mode == "" || o.VLAN < 0 || o.VLAN > 4094 {
			t.Fatalf("accepted invalid options %+v from %q", o, s)
		}
	})
}

func FuzzParsePoolOptions(f *testing.F) {
	f.Add("block-size=28;node-ranges=a=10.0.0.0/28,b=10.0.0.16/28")
	f.Fuzz(func(t *testing.T, s string) {
		o, err := parsePoolOptions(splitOptions(s))
		if err != nil {
			if !errors.Is(err, ErrBadOption) {
				t.Fatalf("error %v does not wrap ErrBadOption", err)
			}
			return
		}
		for n, rs := range o.NodeRanges {
			for _, r := range rs {
				if n == "" || !r.IsValid() || r.Masked() != r {
					t.Fatalf("accepted node range %q=%v from %q", n, r, s)
				}
			}
		}
	})
}
