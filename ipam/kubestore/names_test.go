package kubestore_test

import (
	"errors"
	"net/netip"
	"regexp"
	"testing"
	"time"

	"github.com/medianet/medianet/ipam"
	"github.com/medianet/medianet/ipam/kubestore"
)

// subdomain is Kubernetes' DNS-1123 subdomain, which object names must be.
var subdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)

func TestBlockNames(t *testing.T) {
	for _, tc := range []struct {
		network, block, want string
	}{
		{"media", "10.1.2.16/28", "media.10-1-2-16-28"},
		{"media", "fd00::100/120", "media.fd00--100-120"},
		{"media", "::/120", "media.0---120"},
		{"Media_LAN", "10.0.0.0/28", ""},
		{"-x-", "10.0.0.0/28", ""},
	} {
		got := kubestore.BlockName(tc.network, netip.MustParsePrefix(tc.block))
		if tc.want != "" && got != tc.want {
			t.Errorf("BlockName(%q, %s) = %q, want %q", tc.network, tc.block, got, tc.want)
		}
		if !subdomain.MatchString(got) || len(got) > 253 {
			t.Errorf("BlockName(%q, %s) = %q: not a valid object name", tc.network, tc.block, got)
		}
	}
	if a, b := kubestore.NetworkName("Media_LAN"), kubestore.NetworkName("media-lan"); a == b {
		t.Errorf("networks Media_LAN and media-lan share the object name %q", a)
	}
}

func TestNewSourceRefuses(t *testing.T) {
	c, err := kubestore.New(kubestore.Config{Kubeconfig: "testdata/kubeconfig"})
	if err != nil {
		t.Fatal(err)
	}
	sub := []ipam.Subnet{{Prefix: netip.MustParsePrefix("10.0.0.0/24")}}
	for _, tc := range []struct {
		name string
		cfg  ipam.Config
	}{
		{"no node", ipam.Config{Network: "m", Subnets: sub, BlockSize: 28}},
	} {
		if _, err := kubestore.NewSource(c, &tc.cfg, nil); !errors.Is(err, ipam.ErrConfig) {
			t.Errorf("%s: %v, want ipam.ErrConfig", tc.name, err)
		}
	}
	if _, err := kubestore.New(kubestore.Config{Kubeconfig: "testdata/missing"}); !errors.Is(err, ipam.ErrConfig) {
		t.Errorf("missing kubeconfig: %v, want ipam.ErrConfig", err)
	}
}

// TestStickyNames: a record's name is a valid object name, distinct per
// workload and interface (also where their concatenations agree), and
// stable.
func TestStickyNames(t *testing.T) {
	seen := map[string]string{}
	for _, id := range [][2]string{{"media/jvb-0", "eth0"}, {"media/jvb-0", "net1"}, {"media/jvb-1", "eth0"}, {"media/jvb-0e", "th0"}, {"Ünicode/ø", "eth0"}} {
		name := kubestore.StickyName("Media_LAN", id[0], id[1])
		if !subdomain.MatchString(name) || len(name) > 253 {
			t.Errorf("%v: %q is not an object name", id, name)
		}
		if other, ok := seen[name]; ok {
			t.Errorf("%v and %s share the record name %q", id, other, name)
		}
		seen[name] = id[0] + " " + id[1]
		if again := kubestore.StickyName("Media_LAN", id[0], id[1]); again != name {
			t.Errorf("%v: name %q, then %q", id, name, again)
		}
	}
}

// TestNewSourceSticky: a sticky network is accepted (IPAMSticky records).
func TestNewSourceSticky(t *testing.T) {
	c, err := kubestore.New(kubestore.Config{Kubeconfig: "testdata/kubeconfig"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := ipam.Config{Network: "m", Subnets: []ipam.Subnet{{Prefix: netip.MustParsePrefix("10.0.0.0/24")}}, BlockSize: 28, Node: "a", Sticky: time.Hour}
	src, err := kubestore.NewSource(c, &cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	var _ ipam.StickySource = src
}
