package doctor_test

import (
	"context"
	"net/netip"
	"testing"

	"github.com/medianet/medianet/doctor"
)

// BenchmarkDoctor measures a whole run per verdict with the defaults
// users get (2 s per target, three probes): namespace, macvlan, probes,
// control and teardown. A passing run costs the setup and one round
// trip; a failing one waits out the timeout (IPv6: twice).
func BenchmarkDoctor(b *testing.B) {
	for _, bc := range []struct {
		name     string
		breakIt  func(t testing.TB, w *world)
		gateways []netip.Addr
		want     doctor.Verdict
	}{
		{"pass", nil, []netip.Addr{gw4}, doctor.Pass},
		{"pass-dual-stack", nil, []netip.Addr{gw4, gw6}, doctor.Pass},
		{"dropped", dropUnknown, []netip.Addr{gw4}, doctor.Dropped},
		{"dropped-v6", dropUnknown, []netip.Addr{gw6}, doctor.Dropped},
		{"no-carrier", hostPortDown, []netip.Addr{gw4}, doctor.NoCarrier},
		{"no-answer", nil, []netip.Addr{nobody}, doctor.NoAnswer},
		{"mtu-mismatch", gatewayMTU1400, []netip.Addr{gw4}, doctor.MTUMismatch},
	} {
		b.Run(bc.name, func(b *testing.B) {
			w := newWorld(b)
			if bc.breakIt != nil {
				bc.breakIt(b, w)
			}
			opts := w.opts(bc.gateways...)
			opts.Timeout = 0 // the default
			for b.Loop() {
				r, err := doctor.Run(context.Background(), opts)
				if err != nil || r.Verdict != bc.want {
					b.Fatalf("Run = %q, %v; want %q", r.Verdict, err, bc.want)
				}
			}
		})
	}
}
