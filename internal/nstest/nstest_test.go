package nstest_test

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/medianet/medianet/internal/nstest"
	"github.com/vishvananda/netlink"
)

func TestUniqueName(t *testing.T) {
	a, b := nstest.UniqueName("mnx"), nstest.UniqueName("mnx")
	if a == b || !strings.HasPrefix(a, "mnx") || len(a) > 15 {
		t.Errorf("UniqueName = %q, %q; want distinct, prefixed, at most 15 bytes", a, b)
	}
	if got := nstest.UniqueName("averyverylongprefix"); len(got) != 15 {
		t.Errorf("len(UniqueName(long)) = %d, want 15", len(got))
	}
}

func TestLANPeersReachEachOther(t *testing.T) {
	nstest.SkipUnlessRoot(t)
	if err := nstest.HavePing(); err != nil {
		t.Skip(err)
	}
	lan := nstest.NewLAN(t, "nst")
	a := lan.AddPeer(t, netip.MustParsePrefix("10.86.0.1/24"), netip.MustParsePrefix("fd00:86::1/64"))
	b := lan.AddPeer(t, netip.MustParsePrefix("10.86.0.2/24"), netip.MustParsePrefix("fd00:86::2/64"))
	for _, dst := range []string{"10.86.0.2", "fd00:86::2"} {
		if err := a.Ping(netip.MustParseAddr(dst), 2); err != nil {
			t.Errorf("ping %s: %v", dst, err)
		}
	}
	if err := b.Ping(netip.MustParseAddr("10.86.0.99"), 1); err == nil {
		t.Errorf("ping of an absent address succeeded")
	}
	mac, _, ok, err := a.Neigh("lan0", netip.MustParseAddr("10.86.0.2"))
	if err != nil || !ok || len(mac) != 6 {
		t.Errorf("Neigh after ping = %v, %v, %v; want b's MAC", mac, ok, err)
	}
	// The host's master is up and in the host namespace.
	l, err := lan.Host.Handle(t).LinkByName(lan.Master)
	if err != nil || l.Attrs().Flags&net.FlagUp == 0 {
		t.Errorf("master %q in %s: %v, up %v", lan.Master, lan.Host, err, err == nil && l.Attrs().Flags&net.FlagUp != 0)
	}
}

func TestCleanup(t *testing.T) {
	nstest.SkipUnlessRoot(t)
	var nsPath, master string
	t.Run("inner", func(t *testing.T) {
		lan := nstest.NewRootLAN(t, "nst")
		nsPath, master = lan.Switch.Path, lan.Master
		if _, err := netlink.LinkByName(master); err != nil {
			t.Fatalf("root master %q: %v", master, err)
		}
	})
	if _, err := os.Stat(nsPath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("netns %s after cleanup: %v, want gone", nsPath, err)
	}
	if _, err := netlink.LinkByName(master); err == nil {
		t.Errorf("root master %q still exists after cleanup", master)
	}
}

func TestDoAndExec(t *testing.T) {
	nstest.SkipUnlessRoot(t)
	n := nstest.NewNS(t, "nst")
	want := errors.New("inside")
	if err := n.Do(func() error { return want }); !errors.Is(err, want) {
		t.Errorf("Do error = %v, want %v", err, want)
	}
	var names []string
	if err := n.Do(func() error {
		ls, err := netlink.LinkList()
		for _, l := range ls {
			names = append(names, l.Attrs().Name)
		}
		return err
	}); err != nil || len(names) != 1 || names[0] != "lo" {
		t.Errorf("links seen inside Do = %v, %v; want [lo]", names, err)
	}
	out, err := n.Exec("cat", "/proc/net/dev")
	if err != nil || strings.Contains(string(out), "eth0") {
		t.Errorf("Exec in fresh netns saw %q, %v; want no eth0", out, err)
	}
	if err := n.Sysctl("net.ipv4.conf.lo.arp_notify", "1"); err != nil {
		t.Errorf("Sysctl: %v", err)
	}
}
