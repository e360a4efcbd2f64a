package natlab

import (
	"net/netip"
	"testing"

	"github.com/medianet/medianet/internal/nstest"
)

// Attach plugs namespace n into the world's bridge as ifname with address
// addr (in 198.18.0.0/16, clear of the sites' 198.18.i.1 and .5 for i
// under 100: use 198.18.200.0 and up) and routes each of routed (public
// prefixes behind n, such as a LAN whose router n is) through it from the
// server and every site router. Add the sites first: later ones get no
// route.
func (w *World) Attach(t testing.TB, n *nstest.NS, ifname string, addr netip.Prefix, routed ...netip.Prefix) {
	t.Helper()
	w.plug(t, n, ifname)
	nstest.AddAddrs(t, n, ifname, addr)
	for _, p := range routed {
		for _, ns := range w.namespacesBut(nil) {
			if _, err := Run("ip", "-n", ns, "route", "replace", p.String(), "via", addr.Addr().String()); err != nil {
				t.Fatal(err)
			}
		}
	}
}
