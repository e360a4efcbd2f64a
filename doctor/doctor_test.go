package doctor_test

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/medianet/medianet/doctor"
	"github.com/medianet/medianet/internal/nstest"
	"github.com/vishvananda/netlink"
)

var (
	gw4    = netip.MustParseAddr("10.87.0.254")
	gw6    = netip.MustParseAddr("fd00:87::fe")
	peer4  = netip.MustParseAddr("10.87.0.7")
	nobody = netip.MustParseAddr("10.87.0.99")
)

// world is a LAN whose host namespace holds the parent (lan.Master), with
// a gateway namespace and a peer namespace on the same bridge.
type world struct {
	lan           *nstest.LAN
	gateway, peer *nstest.NS
}

func newWorld(t testing.TB) *world {
	t.Helper()
	nstest.SkipUnlessRoot(t)
	lan := nstest.NewLAN(t, "mdc")
	w := &world{lan: lan}
	w.gateway = lan.AddPeer(t, netip.PrefixFrom(gw4, 24), netip.PrefixFrom(gw6, 64))
	w.peer = lan.AddPeer(t, netip.PrefixFrom(peer4, 24))
	return w
}

func (w *world) opts(gws ...netip.Addr) doctor.Options {
	return doctor.Options{HostNS: w.lan.Host.Path, Parent: w.lan.Master, Gateways: gws, Timeout: 600 * time.Millisecond}
}

// TestVerdicts builds each failure a LAN can have in namespaces and
// checks the doctor's verdict, exit code and per-target findings.
func TestVerdicts(t *testing.T) {
	for _, tc := range []struct {
		name        string
		breakIt     func(t testing.TB, w *world)
		gateways    []netip.Addr
		peers       []netip.Addr
		want        doctor.Verdict
		wantExit    int
		wantTargets []doctor.Verdict
	}{
		{name: "pass v4", gateways: []netip.Addr{gw4}, want: doctor.Pass, wantExit: 0, wantTargets: []doctor.Verdict{doctor.Pass}},
		{name: "pass dual stack and peer", gateways: []netip.Addr{gw4, gw6}, peers: []netip.Addr{peer4},
			want: doctor.Pass, wantExit: 0, wantTargets: []doctor.Verdict{doctor.Pass, doctor.Pass, doctor.Pass}},
		{name: "dropped", breakIt: dropUnknown, gateways: []netip.Addr{gw4, gw6}, peers: []netip.Addr{peer4},
			want: doctor.Dropped, wantExit: 3, wantTargets: []doctor.Verdict{doctor.Dropped, doctor.Dropped, doctor.Dropped}},
		{name: "no carrier", breakIt: hostPortDown, gateways: []netip.Addr{gw4}, want: doctor.NoCarrier, wantExit: 4},
		{name: "parent down", breakIt: masterDown, gateways: []netip.Addr{gw4}, want: doctor.ParentDown, wantExit: 4},
		{name: "no gateway", gateways: []netip.Addr{nobody}, want: doctor.NoAnswer, wantExit: 5, wantTargets: []doctor.Verdict{doctor.NoAnswer}},
		{name: "peer silent, gateway fine", gateways: []netip.Addr{gw4}, peers: []netip.Addr{nobody},
			want: doctor.NoAnswer, wantExit: 5, wantTargets: []doctor.Verdict{doctor.Pass, doctor.NoAnswer}},
		{name: "mtu mismatch", breakIt: gatewayMTU1400, gateways: []netip.Addr{gw4}, want: doctor.MTUMismatch, wantExit: 6,
			wantTargets: []doctor.Verdict{doctor.MTUMismatch}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			if tc.breakIt != nil {
				tc.breakIt(t, w)
			}
			opts := w.opts(tc.gateways...)
			opts.Peers = tc.peers
			r, err := doctor.Run(context.Background(), opts)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if r.Verdict != tc.want || r.ExitCode != tc.wantExit {
				t.Fatalf("verdict %q exit %d, want %q exit %d; report %+v", r.Verdict, r.ExitCode, tc.want, tc.wantExit, r)
			}
			if r.Reason == "" || (tc.want != doctor.Pass && len(r.Advice) == 0) {
				t.Errorf("reason %q, advice %q: want both for a finding", r.Reason, r.Advice)
			}
			if len(r.Targets) != len(tc.wantTargets) {
				t.Fatalf("targets %+v, want verdicts %v", r.Targets, tc.wantTargets)
			}
			for i, tg := range r.Targets {
				if tg.Verdict != tc.wantTargets[i] {
					t.Errorf("target %s: verdict %q, want %q (%+v)", tg.Address, tg.Verdict, tc.wantTargets[i], tg)
				}
				if tg.Verdict == doctor.Pass && tg.AnsweredBy == "" {
					t.Errorf("target %s passed with no answering MAC", tg.Address)
				}
				if tg.Verdict == doctor.Dropped && (tg.TestMACAnswered || !tg.ParentMACAnswered) {
					t.Errorf("target %s dropped: test answered %v, parent answered %v; want false, true", tg.Address, tg.TestMACAnswered, tg.ParentMACAnswered)
				}
			}
			if tc.want == doctor.Pass && r.Targets[0].AnsweredBy != w.gateway.MAC(t, "lan0").String() {
				t.Errorf("answered by %s, want the gateway's %s", r.Targets[0].AnsweredBy, w.gateway.MAC(t, "lan0"))
			}
		})
	}
}

// dropUnknown lets the bridge forward only the MACs it was told about:
// the host's parent and the LAN's own hosts, as a vSwitch without forged
// transmits.
func dropUnknown(t testing.TB, w *world) {
	w.lan.DropUnknownMACs(t, w.lan.Host.MAC(t, w.lan.Master), w.gateway.MAC(t, "lan0"), w.peer.MAC(t, "lan0"))
}

func hostPortDown(t testing.TB, w *world) {
	setDown(t, w.lan.Switch, w.lan.HostPort)
}

func masterDown(t testing.TB, w *world) {
	setDown(t, w.lan.Host, w.lan.Master)
}

func gatewayMTU1400(t testing.TB, w *world) {
	h := w.gateway.Handle(t)
	l, err := h.LinkByName("lan0")
	if err == nil {
		err = h.LinkSetMTU(l, 1400)
	}
	if err != nil {
		t.Fatal(err)
	}
}

func setDown(t testing.TB, n *nstest.NS, ifname string) {
	t.Helper()
	h := n.Handle(t)
	l, err := h.LinkByName(ifname)
	if err == nil {
		err = h.LinkSetDown(l)
	}
	if err != nil {
		t.Fatalf("%s: down %q: %v", n, ifname, err)
	}
}

func TestParentMissing(t *testing.T) {
	w := newWorld(t)
	opts := w.opts(gw4)
	opts.Parent = "nosuch0"
	r, err := doctor.Run(context.Background(), opts)
	if err != nil || r.Verdict != doctor.ParentMissing || r.ExitCode != 4 {
		t.Fatalf("Run = %+v, %v; want parent-missing, exit 4", r, err)
	}
}

// TestDefaultGateway: without --gateway the doctor asks the gateway of
// the default route via the parent; with neither that nor a peer it says
// what to give.
func TestDefaultGateway(t *testing.T) {
	w := newWorld(t)
	_, err := doctor.Run(context.Background(), w.opts())
	if !errors.Is(err, doctor.ErrNoTarget) {
		t.Fatalf("Run without targets: %v, want ErrNoTarget", err)
	}
	nstest.AddAddrs(t, w.lan.Host, w.lan.Master, netip.MustParsePrefix("10.87.0.10/24"))
	h := w.lan.Host.Handle(t)
	m, err := h.LinkByName(w.lan.Master)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.RouteAdd(&netlink.Route{LinkIndex: m.Attrs().Index, Gw: gw4.AsSlice()}); err != nil {
		t.Fatal(err)
	}
	r, err := doctor.Run(context.Background(), w.opts())
	if err != nil || r.Verdict != doctor.Pass || len(r.Targets) != 1 || r.Targets[0].Address != gw4 {
		t.Fatalf("Run = %+v, %v; want pass asking %s", r, err, gw4)
	}
}

// TestLeavesNothing: after a run the parent's namespace holds the links
// it held before, and the parent's promiscuity (raised by a macvlan on a
// veth) is back where it was: the doctor's macvlan is gone.
func TestLeavesNothing(t *testing.T) {
	w := newWorld(t)
	before := links(t, w.lan.Host)
	promisc, err := w.lan.Host.Promiscuity(w.lan.Master)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := doctor.Run(context.Background(), w.opts(gw4)); err != nil {
		t.Fatal(err)
	}
	if after := links(t, w.lan.Host); after != before {
		t.Errorf("links in the parent's namespace: %d after, %d before", after, before)
	}
	if err := waitPromiscuity(w.lan.Host, w.lan.Master, promisc); err != nil {
		t.Error(err)
	}
}

func links(t *testing.T, n *nstest.NS) int {
	ls, err := n.Handle(t).LinkList()
	if err != nil {
		t.Fatal(err)
	}
	return len(ls)
}

// waitPromiscuity waits until the promiscuity of ifname is want again (the
// kernel destroys a namespace asynchronously), for at most 10 s.
func waitPromiscuity(n *nstest.NS, ifname string, want int) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := n.Promiscuity(ifname)
		if err != nil || got == want {
			return err
		}
		if time.Now().After(deadline) {
			return errors.New("the parent's promiscuity never returned: a macvlan is still on it")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestOptionsRefused(t *testing.T) {
	for _, o := range []doctor.Options{
		{},
		{Parent: "x", VLAN: 5000},
		{Parent: "x", Gateways: []netip.Addr{gw4, netip.MustParseAddr("10.0.0.1")}},
		{Parent: "x", Peers: []netip.Addr{netip.MustParseAddr("224.0.0.1")}},
	} {
		if _, err := doctor.Run(context.Background(), o); !errors.Is(err, doctor.ErrInvalid) {
			t.Errorf("Run(%+v) = %v, want ErrInvalid", o, err)
		}
	}
}

// TestVLAN: with 802.1q the doctor tests the VLAN (the gateway answers
// only there); on a kernel without it, the run fails with an error that
// names what is missing, not with a verdict about the LAN.
func TestVLAN(t *testing.T) {
	w := newWorld(t)
	opts := w.opts(netip.MustParseAddr("10.88.0.254"))
	opts.VLAN = 7
	if err := nstest.HaveVLAN(t); err != nil {
		_, err := doctor.Run(context.Background(), opts)
		if !errors.Is(err, doctor.ErrNoVLAN) {
			t.Fatalf("Run with vlan on a kernel without 802.1q: %v, want ErrNoVLAN", err)
		}
		t.Logf("kernel without 802.1q, as expected here: %v", err)
		return
	}
	h := w.gateway.Handle(t)
	lan0, err := h.LinkByName("lan0")
	if err != nil {
		t.Fatal(err)
	}
	attrs := netlink.NewLinkAttrs()
	attrs.Name, attrs.ParentIndex = "lan0.7", lan0.Attrs().Index
	if err := h.LinkAdd(&netlink.Vlan{LinkAttrs: attrs, VlanId: 7}); err != nil {
		t.Fatal(err)
	}
	v, _ := h.LinkByName("lan0.7")
	if err := h.LinkSetUp(v); err != nil {
		t.Fatal(err)
	}
	nstest.AddAddrs(t, w.gateway, "lan0.7", netip.MustParsePrefix("10.88.0.254/24"))
	r, err := doctor.Run(context.Background(), opts)
	if err != nil || r.Verdict != doctor.Pass || r.Link != w.lan.Master+".7" {
		t.Fatalf("Run on vlan 7 = %+v, %v; want pass on %s.7", r, err, w.lan.Master)
	}
}
