package doctor_test

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/medianet/medianet/doctor"
	"github.com/medianet/medianet/internal/nstest"
	"github.com/medianet/medianet/macvlan"
)

var (
	printer4 = netip.MustParseAddr("10.87.0.20")
	printer6 = netip.MustParseAddr("fd00:87::20")
	free4    = netip.MustParseAddr("10.87.0.21")
	free6    = netip.MustParseAddr("fd00:87::21")
)

// TestProbeConflicts: a printer on the LAN holds an IPv4 and an IPv6
// address; probes from a container's own link (before it has an address)
// and from a short-lived macvlan on the parent both find it, by its MAC,
// and find nobody at the free addresses.
func TestProbeConflicts(t *testing.T) {
	w := newWorld(t)
	printer := w.lan.AddPeer(t, netip.PrefixFrom(printer4, 24), netip.PrefixFrom(printer6, 64))
	// The printer's IPv6 address must be past its own DAD to answer.
	waitNotTentative(t, printer, printer6)
	addrs := []netip.Addr{printer4, free4, printer6, free6}
	ctx := context.Background()

	container := nstest.NewNS(t, "mdcc")
	spec := macvlan.Spec{Master: w.lan.Master, Mode: macvlan.ModeBridge}
	if _, err := macvlan.Create(w.lan.Host.Path, spec, container.Path, "eth0"); err != nil {
		t.Fatalf("create the container's link: %v", err)
	}
	for _, tc := range []struct {
		name  string
		probe func() ([]doctor.Answer, error)
	}{
		{"container link", func() ([]doctor.Answer, error) {
			return doctor.ProbeLink(ctx, container.Path, "eth0", addrs, 400*time.Millisecond)
		}},
		{"parent", func() ([]doctor.Answer, error) {
			return doctor.ProbeParent(ctx, w.lan.Host.Path, w.lan.Master, addrs, 400*time.Millisecond)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.probe()
			if err != nil {
				t.Fatalf("probe: %v", err)
			}
			want := map[netip.Addr]bool{printer4: true, printer6: true}
			for _, a := range got {
				if !want[a.Addr] {
					t.Errorf("answer for %s by %s: nobody holds it", a.Addr, a.MAC)
					continue
				}
				delete(want, a.Addr)
				if a.MAC.String() != printer.MAC(t, "lan0").String() {
					t.Errorf("%s answered by %s, want the printer's %s", a.Addr, a.MAC, printer.MAC(t, "lan0"))
				}
			}
			for a := range want {
				t.Errorf("no answer for %s, which the printer holds", a)
			}
		})
	}
	if link, err := container.Handle(t).LinkByName("eth0"); err != nil || link.Attrs().Flags&1 != 0 {
		t.Errorf("the container's link after the probe: %v, up %v; want it down again, for its configuration", err, err == nil && link.Attrs().Flags&1 != 0)
	}
}

// TestProbeParentDown: a parent that cannot carry a probe is said so.
func TestProbeParentDown(t *testing.T) {
	w := newWorld(t)
	masterDown(t, w)
	_, err := doctor.ProbeParent(context.Background(), w.lan.Host.Path, w.lan.Master, []netip.Addr{free4}, 200*time.Millisecond)
	if !errors.Is(err, doctor.ErrCannotProbe) {
		t.Fatalf("probe on a parent that is down: %v, want ErrCannotProbe", err)
	}
}

func waitNotTentative(t *testing.T, n *nstest.NS, a netip.Addr) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := n.Exec("ip", "-6", "addr", "show", "tentative")
		if err == nil && !strings.Contains(string(out), a.String()+"/") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s of %s still tentative: %s %v", a, n, out, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
