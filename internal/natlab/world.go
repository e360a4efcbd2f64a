package natlab

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/medianet/medianet/internal/nstest"
	"github.com/vishvananda/netlink"
)

// Server addresses on the lab's internet.
var (
	ServerIP1  = netip.MustParseAddr("198.18.0.10")
	ServerIP2  = netip.MustParseAddr("198.18.0.11")
	ServerIP61 = netip.MustParseAddr("fd18::10")
	ServerIP62 = netip.MustParseAddr("fd18::11")
)

// maxSites bounds the sites of a world (site i uses 10.77.i.0/24 and
// 198.18.i.0 addresses; site 0 shares 198.18.0.0 with the servers).
const maxSites = 100

// World is the lab's internet: a bridge, a server namespace and sites.
type World struct {
	Switch *nstest.NS // holds bridge br0
	Server *nstest.NS // s0 with ServerIP1, ServerIP2 and their IPv6 twins
	sites  []*Site
}

// Site is one host behind one router.
type Site struct {
	Kind   Kind
	Index  int
	Host   *nstest.NS // c0, default route through the router
	Router *nstest.NS // n0 inside, n1 on the internet, the NAT rules
	// HostIP and HostIP6 are the host's own addresses.
	HostIP, HostIP6 netip.Addr
	// PublicIP and PublicIP6 are the router's address on the internet
	// (the host's public address for the masquerading kinds).
	PublicIP, PublicIP6 netip.Addr
	// OneToOneIP and OneToOneIP6 are the host's static public address for
	// OneToOne and AddressDependent.
	OneToOneIP, OneToOneIP6 netip.Addr
}

func siteAddrs(i int) Site {
	return Site{
		Index:       i,
		HostIP:      netip.MustParseAddr(fmt.Sprintf("10.77.%d.2", i)),
		HostIP6:     netip.MustParseAddr(fmt.Sprintf("fd77:0:0:%x::2", i)),
		PublicIP:    netip.MustParseAddr(fmt.Sprintf("198.18.%d.1", i)),
		PublicIP6:   netip.MustParseAddr(fmt.Sprintf("fd18::%x:1", i)),
		OneToOneIP:  netip.MustParseAddr(fmt.Sprintf("198.18.%d.5", i)),
		OneToOneIP6: netip.MustParseAddr(fmt.Sprintf("fd18::%x:5", i)),
	}
}

// inside returns the host's IPv4 and IPv6 prefixes and the router's
// inside addresses.
func (s *Site) inside() (p4, p6 netip.Prefix, gw4, gw6 netip.Addr) {
	p4 = netip.PrefixFrom(s.HostIP, 24).Masked()
	p6 = netip.PrefixFrom(s.HostIP6, 64).Masked()
	return p4, p6, p4.Addr().Next(), p6.Addr().Next()
}

// NewWorld builds the switch and the server namespace, removed when t ends.
func NewWorld(t testing.TB) *World {
	t.Helper()
	Skip(t)
	w := &World{Switch: nstest.NewNS(t, "npxw"), Server: nstest.NewNS(t, "npxs")}
	h := w.Switch.Handle(t)
	br := &netlink.Bridge{LinkAttrs: netlink.NewLinkAttrs()}
	br.Name = "br0"
	if err := h.LinkAdd(br); err != nil {
		t.Fatalf("natlab: bridge in %s: %v", w.Switch, err)
	}
	if err := h.LinkSetUp(br); err != nil {
		t.Fatalf("natlab: bridge up: %v", err)
	}
	w.plug(t, w.Server, "s0")
	nstest.AddAddrs(t, w.Server, "s0", netip.PrefixFrom(ServerIP1, 16), netip.PrefixFrom(ServerIP2, 16),
		netip.PrefixFrom(ServerIP61, 64), netip.PrefixFrom(ServerIP62, 64))
	return w
}

// plug connects ifname in n to the world's bridge.
func (w *World) plug(t testing.TB, n *nstest.NS, ifname string) {
	t.Helper()
	port := nstest.UniqueName("p")
	if err := nstest.Veth(n, ifname, w.Switch, port); err != nil {
		t.Fatalf("natlab: %v", err)
	}
	h := w.Switch.Handle(t)
	p, err := h.LinkByName(port)
	if err == nil {
		var br netlink.Link
		if br, err = h.LinkByName("br0"); err == nil {
			err = h.LinkSetMaster(p, br)
		}
	}
	if err != nil {
		t.Fatalf("natlab: bridge port %s: %v", port, err)
	}
}

// Sites returns the sites added so far.
func (w *World) Sites() []*Site { return append([]*Site(nil), w.sites...) }

// AddSite builds a host behind a router of the given kind.
func (w *World) AddSite(t testing.TB, kind Kind) *Site {
	t.Helper()
	if len(w.sites) >= maxSites {
		t.Fatalf("natlab: at most %d sites", maxSites)
	}
	s := siteAddrs(len(w.sites))
	site := &s
	site.Kind = kind
	site.Router = nstest.NewNS(t, "npxn")
	site.Host = nstest.NewNS(t, "npxc")
	if err := nstest.Veth(site.Router, "n0", site.Host, "c0"); err != nil {
		t.Fatalf("natlab: %v", err)
	}
	w.plug(t, site.Router, "n1")
	_, _, gw4, gw6 := site.inside()
	nstest.AddAddrs(t, site.Host, "c0", netip.PrefixFrom(site.HostIP, 24), netip.PrefixFrom(site.HostIP6, 64))
	nstest.AddAddrs(t, site.Router, "n0", netip.PrefixFrom(gw4, 24), netip.PrefixFrom(gw6, 64))
	nstest.AddAddrs(t, site.Router, "n1", netip.PrefixFrom(site.PublicIP, 16), netip.PrefixFrom(site.OneToOneIP, 16),
		netip.PrefixFrom(site.PublicIP6, 64), netip.PrefixFrom(site.OneToOneIP6, 64))
	steps := [][]string{
		{"ip", "-n", site.Host.Name, "route", "add", "default", "via", gw4.String()},
		{"ip", "-n", site.Host.Name, "-6", "route", "add", "default", "via", gw6.String()},
		{"ip", "netns", "exec", site.Router.Name, "sysctl", "-qw", "net.ipv4.ip_forward=1"},
		{"ip", "netns", "exec", site.Router.Name, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"},
	}
	for _, s := range steps {
		if _, err := Run(s...); err != nil {
			t.Fatal(err)
		}
	}
	if err := site.applyRules(); err != nil {
		t.Fatal(err)
	}
	w.sites = append(w.sites, site)
	if err := w.routeOpenSites(); err != nil {
		t.Fatal(err)
	}
	return site
}

// routeOpenSites makes the inside prefixes of NoNAT sites reachable from
// the server and every other router (they are public addresses); the
// other sites' inside prefixes stay unrouted, as private ones are.
func (w *World) routeOpenSites() error {
	for _, open := range w.sites {
		if open.Kind != NoNAT {
			continue
		}
		p4, p6, _, _ := open.inside()
		for _, ns := range w.namespacesBut(open) {
			for _, r := range [][]string{
				{"ip", "-n", ns, "route", "replace", p4.String(), "via", open.PublicIP.String()},
				{"ip", "-n", ns, "-6", "route", "replace", p6.String(), "via", open.PublicIP6.String()},
			} {
				if _, err := Run(r...); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// namespacesBut lists the server and every router except s's.
func (w *World) namespacesBut(s *Site) []string {
	out := []string{w.Server.Name}
	for _, o := range w.sites {
		if o != s {
			out = append(out, o.Router.Name)
		}
	}
	return out
}

// Reset forgets the router's NAT state: its conntrack table and, for
// AddressDependent, the addresses its host has sent to. Sessions then
// start as on a fresh router.
func (s *Site) Reset() error {
	h, err := s.Router.NewHandle()
	if err != nil {
		return err
	}
	defer h.Close()
	if err := h.ConntrackTableFlush(netlink.ConntrackTable); err != nil {
		return fmt.Errorf("natlab: flush conntrack in %s: %w", s.Router, err)
	}
	if s.Kind == AddressDependent {
		for _, set := range []string{"out4", "out6"} {
			if _, err := In(s.Router.Name, "nft", "flush", "set", "inet", adfTable, set); err != nil {
				return err
			}
		}
	}
	return nil
}

// AddLoss drops that fraction (0 to 1) of packets each way on the
// server's link.
func (w *World) AddLoss(loss float64) error {
	p := fmt.Sprintf("%.4f", loss)
	for _, tool := range []string{"iptables", "ip6tables"} {
		for _, r := range [][]string{
			{"-t", "raw", "-A", "PREROUTING", "-i", "s0", "-m", "statistic", "--mode", "random", "--probability", p, "-j", "DROP"},
			{"-A", "OUTPUT", "-o", "s0", "-m", "statistic", "--mode", "random", "--probability", p, "-j", "DROP"},
		} {
			if _, err := In(w.Server.Name, append([]string{tool}, r...)...); err != nil {
				return err
			}
		}
	}
	return nil
}
