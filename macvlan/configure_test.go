package macvlan_test

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/medianet/medianet/internal/nstest"
	"github.com/medianet/medianet/macvlan"
	"github.com/vishvananda/netlink"
)

// family is one address plan for a container and a LAN peer.
type family struct {
	name     string
	cont     []netip.Prefix
	peer     []netip.Prefix
	gateways []netip.Addr
}

var families = []family{
	{"ipv4", []netip.Prefix{pfx("10.77.0.10/24")}, []netip.Prefix{pfx("10.77.0.254/24")}, []netip.Addr{addr("10.77.0.254")}},
	{"ipv6", []netip.Prefix{pfx("fd00:77::10/64")}, []netip.Prefix{pfx("fd00:77::fe/64")}, []netip.Addr{addr("fd00:77::fe")}},
	{"dual", []netip.Prefix{pfx("10.77.0.10/24"), pfx("fd00:77::10/64")},
		[]netip.Prefix{pfx("10.77.0.254/24"), pfx("fd00:77::fe/64")}, []netip.Addr{addr("10.77.0.254"), addr("fd00:77::fe")}},
}

// addContainer creates and configures a macvlan "eth0" in a new namespace.
func addContainer(t *testing.T, lan *nstest.LAN, mode macvlan.Mode, cfg macvlan.Config) *nstest.NS {
	t.Helper()
	cont := nstest.NewNS(t, "mvc")
	if _, err := macvlan.Create(lan.Host.Path, macvlan.Spec{Master: lan.Master, Mode: mode}, cont.Path, "eth0"); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if err := macvlan.Configure(cont.Path, "eth0", cfg); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	return cont
}

func TestConfigureFamilies(t *testing.T) {
	for _, f := range families {
		t.Run(f.name, func(t *testing.T) {
			nstest.SkipUnlessRoot(t)
			lan := nstest.NewLAN(t, "mvt")
			peer := lan.AddPeer(t, f.peer...)
			extra := macvlan.Route{Dst: pfx("10.99.0.0/16"), Gw: addr("10.77.0.254")}
			if f.name == "ipv6" {
				extra = macvlan.Route{Dst: pfx("fd00:99::/48"), Gw: addr("fd00:77::fe")}
			}
			cfg := macvlan.Config{Addresses: f.cont, Gateways: f.gateways, Routes: []macvlan.Route{extra}, SkipDAD: true}
			spec := macvlan.Spec{Master: lan.Master}
			cont := addContainer(t, lan, "", cfg)
			if err := macvlan.Check(lan.Host.Path, spec, cont.Path, "eth0", cfg); err != nil {
				t.Errorf("Check after Configure: %v", err)
			}
			// Configure is repeatable (a retried ADD).
			if err := macvlan.Configure(cont.Path, "eth0", cfg); err != nil {
				t.Errorf("second Configure: %v", err)
			}
			for _, p := range f.peer {
				if err := reach(cont, p.Addr()); err != nil {
					t.Errorf("container cannot reach peer %s: %v", p.Addr(), err)
				}
			}
			for _, p := range f.cont {
				if err := reach(peer, p.Addr()); err != nil {
					t.Errorf("peer cannot reach container %s: %v", p.Addr(), err)
				}
			}
		})
	}
}

func TestTwoContainersReachEachOther(t *testing.T) {
	nstest.SkipUnlessRoot(t)
	if err := nstest.HavePing(); err != nil {
		t.Skip(err)
	}
	lan := nstest.NewLAN(t, "mvt")
	a := addContainer(t, lan, macvlan.ModeBridge, macvlan.Config{
		Addresses: []netip.Prefix{pfx("10.78.0.1/24"), pfx("fd00:78::1/64")}, SkipDAD: true})
	b := addContainer(t, lan, macvlan.ModeBridge, macvlan.Config{
		Addresses: []netip.Prefix{pfx("10.78.0.2/24"), pfx("fd00:78::2/64")}, SkipDAD: true})
	for _, tc := range []struct {
		from *nstest.NS
		to   string
	}{{a, "10.78.0.2"}, {b, "10.78.0.1"}, {a, "fd00:78::2"}, {b, "fd00:78::1"}} {
		if err := tc.from.Ping(addr(tc.to), 2); err != nil {
			t.Errorf("ping %s from %s: %v", tc.to, tc.from, err)
		}
	}
}

func TestPrivateModeIsolates(t *testing.T) {
	nstest.SkipUnlessRoot(t)
	lan := nstest.NewLAN(t, "mvt")
	a := addContainer(t, lan, macvlan.ModePrivate, macvlan.Config{Addresses: []netip.Prefix{pfx("10.79.0.1/24")}})
	addContainer(t, lan, macvlan.ModePrivate, macvlan.Config{Addresses: []netip.Prefix{pfx("10.79.0.2/24")}})
	if err := a.Ping(addr("10.79.0.2"), 1); err == nil {
		t.Errorf("private-mode containers on one master reached each other; want isolation")
	}
}

// TestAnnounceUpdatesPeerCache: a LAN peer holds a stale entry for the
// container's address with an old MAC (the previous container with that
// IP). Right after Configure (kernel announcement on link up) or Announce
// (raw frames, on a link configured without announcements), or
// AnnounceFor from the master with the link's MAC (the Docker driver's
// path when it cannot open the container's namespace), the peer's
// entry carries the new MAC, though the container sent nothing else. The
// control shows a plain setup (link up, then address) does not do it.
func TestAnnounceUpdatesPeerCache(t *testing.T) {
	oldMAC, _ := net.ParseMAC("02:00:00:00:be:ef")
	const (
		viaConfigure = "configure"
		viaAnnounce  = "announce"
		viaParent    = "parent" // AnnounceFor: from the master, the link's MAC as source
		none         = "none"
	)
	for _, tc := range []struct {
		name   string
		cont   netip.Prefix
		peer   netip.Prefix
		how    string
		accept string // peer sysctls (comma-separated) accepting new entries: no stale entry seeded
	}{
		{"ipv4 new entry with arp_accept", pfx("10.80.0.10/24"), pfx("10.80.0.254/24"), viaConfigure, "net.ipv4.conf.lan0.arp_accept"},
		// RFC 9131: only routers (forwarding on) learn from untracked NAs.
		{"ipv6 new entry on a router with accept_untracked_na", pfx("fd00:80::10/64"), pfx("fd00:80::fe/64"), viaConfigure,
			"net.ipv6.conf.lan0.forwarding,net.ipv6.conf.lan0.accept_untracked_na"},
		{"ipv4 configure", pfx("10.80.0.10/24"), pfx("10.80.0.254/24"), viaConfigure, ""},
		{"ipv6 configure", pfx("fd00:80::10/64"), pfx("fd00:80::fe/64"), viaConfigure, ""},
		{"ipv4 announce", pfx("10.80.0.10/24"), pfx("10.80.0.254/24"), viaAnnounce, ""},
		{"ipv6 announce", pfx("fd00:80::10/64"), pfx("fd00:80::fe/64"), viaAnnounce, ""},
		{"ipv4 announce from the parent", pfx("10.80.0.10/24"), pfx("10.80.0.254/24"), viaParent, ""},
		{"ipv6 announce from the parent", pfx("fd00:80::10/64"), pfx("fd00:80::fe/64"), viaParent, ""},
		{"ipv4 control", pfx("10.80.0.10/24"), pfx("10.80.0.254/24"), none, ""},
		{"ipv6 control", pfx("fd00:80::10/64"), pfx("fd00:80::fe/64"), none, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nstest.SkipUnlessRoot(t)
			lan := nstest.NewLAN(t, "mvt")
			peer := lan.AddPeer(t, tc.peer)
			ip := tc.cont.Addr()
			if tc.accept != "" {
				for _, k := range strings.Split(tc.accept, ",") {
					if err := peer.Sysctl(k, "1"); err != nil {
						t.Skipf("peer sysctl (kernel older than 5.18?): %v", err)
					}
				}
			} else if err := peer.SetNeigh("lan0", ip, oldMAC, netlink.NUD_STALE); err != nil {
				t.Fatal(err)
			}
			cont := nstest.NewNS(t, "mvc")
			link, err := macvlan.Create(lan.Host.Path, macvlan.Spec{Master: lan.Master}, cont.Path, "eth0")
			if err != nil {
				t.Fatalf("Create: %v", err)
			}
			if tc.how == viaConfigure {
				err = macvlan.Configure(cont.Path, "eth0", macvlan.Config{Addresses: []netip.Prefix{tc.cont}, SkipDAD: true})
			} else {
				err = plainConfigure(cont, tc.cont)
			}
			switch {
			case err == nil && tc.how == viaAnnounce:
				err = macvlan.Announce(cont.Path, "eth0", []netip.Addr{ip})
			case err == nil && tc.how == viaParent:
				err = macvlan.AnnounceFor(lan.Host.Path, lan.Master, link.MAC, []netip.Addr{ip})
			}
			if err != nil {
				t.Fatalf("configure: %v", err)
			}
			var got net.HardwareAddr
			updated := eventually(func() bool {
				got, _, _, _ = peer.Neigh("lan0", ip)
				return got.String() == link.MAC.String()
			})
			if want := tc.how != none; updated != want {
				t.Errorf("peer's neighbour entry for %s = %s; updated to container MAC %s: %v, want %v",
					ip, got, link.MAC, updated, want)
			}
		})
	}
}

// plainConfigure brings eth0 up with p, as a plugin without announcements
// would (arp_notify and ndisc_notify left at their defaults).
func plainConfigure(n *nstest.NS, p netip.Prefix) error {
	h, err := n.NewHandle()
	if err != nil {
		return err
	}
	defer h.Close()
	l, err := h.LinkByName("eth0")
	if err != nil {
		return err
	}
	if err := h.LinkSetUp(l); err != nil {
		return err
	}
	a := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}, Flags: 0x02}
	return h.AddrAdd(l, a)
}

func TestCheckDetects(t *testing.T) {
	nstest.SkipUnlessRoot(t)
	cfg := macvlan.Config{Addresses: []netip.Prefix{pfx("10.81.0.10/24"), pfx("fd00:81::10/64")},
		Gateways: []netip.Addr{addr("10.81.0.254")}, SkipDAD: true}
	for _, tc := range []struct {
		name   string
		spec   func(lan *nstest.LAN) macvlan.Spec
		break_ func(h *netlink.Handle) error
		want   error
	}{
		{"healthy", nil, nil, nil},
		{"link gone", nil, func(h *netlink.Handle) error { return delLink(h) }, macvlan.ErrLinkNotFound},
		{"address gone", nil, func(h *netlink.Handle) error { return delAddr(h, "fd00:81::10/64") }, macvlan.ErrAddressMissing},
		{"route gone", nil, func(h *netlink.Handle) error { return delDefault(h) }, macvlan.ErrRouteMissing},
		{"mode differs", func(lan *nstest.LAN) macvlan.Spec { return macvlan.Spec{Master: lan.Master, Mode: macvlan.ModeVEPA} }, nil, macvlan.ErrMismatch},
		{"master gone", func(lan *nstest.LAN) macvlan.Spec { return macvlan.Spec{Master: "nosuchmaster0"} }, nil, macvlan.ErrMasterNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lan := nstest.NewLAN(t, "mvt")
			cont := addContainer(t, lan, "", cfg)
			spec := macvlan.Spec{Master: lan.Master}
			if tc.spec != nil {
				spec = tc.spec(lan)
			}
			if tc.break_ != nil {
				if err := tc.break_(cont.Handle(t)); err != nil {
					t.Fatalf("break: %v", err)
				}
			}
			err := macvlan.Check(lan.Host.Path, spec, cont.Path, "eth0", cfg)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("Check error = %v, want %v", err, tc.want)
			}
		})
	}
}

func delLink(h *netlink.Handle) error {
	l, err := h.LinkByName("eth0")
	if err != nil {
		return err
	}
	return h.LinkDel(l)
}

func delAddr(h *netlink.Handle, p string) error {
	l, err := h.LinkByName("eth0")
	if err != nil {
		return err
	}
	a, err := netlink.ParseAddr(p)
	if err != nil {
		return err
	}
	return h.AddrDel(l, a)
}

func delDefault(h *netlink.Handle) error {
	rs, err := h.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		return err
	}
	for _, r := range rs {
		if r.Dst == nil || r.Dst.String() == "0.0.0.0/0" {
			return h.RouteDel(&r)
		}
	}
	return fmt.Errorf("no default route to delete")
}
