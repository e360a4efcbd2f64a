package macvlan_test

import (
	"net/netip"
	"os"
	"testing"

	"github.com/medianet/medianet/internal/nstest"
	"github.com/medianet/medianet/macvlan"
)

// BenchmarkCreateConfigureDelete measures one container's link life:
// Create in its namespace, Configure (IPv4 address, default route,
// sysctls, gratuitous ARP) and Delete.
func BenchmarkCreateConfigureDelete(b *testing.B) {
	benchLife(b, macvlan.Config{
		Addresses: []netip.Prefix{pfx("10.90.0.10/24")},
		Gateways:  []netip.Addr{addr("10.90.0.254")},
	})
}

// BenchmarkCreateConfigureDeleteDual is the same with dual stack and
// SkipDAD (adds IPv6 sysctls and a neighbour advertisement).
func BenchmarkCreateConfigureDeleteDual(b *testing.B) {
	benchLife(b, macvlan.Config{
		Addresses: []netip.Prefix{pfx("10.90.0.10/24"), pfx("fd00:90::10/64")},
		Gateways:  []netip.Addr{addr("10.90.0.254"), addr("fd00:90::fe")},
		SkipDAD:   true,
	})
}

// BenchmarkCreateDelete is the netlink floor: Create and Delete only.
func BenchmarkCreateDelete(b *testing.B) {
	benchLife(b, macvlan.Config{})
}

// BenchmarkCreateConfigure times Create and Configure (IPv4) only; the
// Delete of each iteration runs with the timer stopped. Delete alone is
// the difference to BenchmarkCreateConfigureDelete: mostly the kernel's
// RCU grace period when a link is unregistered.
func BenchmarkCreateConfigure(b *testing.B) {
	benchLifeTimed(b, macvlan.Config{
		Addresses: []netip.Prefix{pfx("10.90.0.10/24")},
		Gateways:  []netip.Addr{addr("10.90.0.254")},
	}, false)
}

func benchLife(b *testing.B, cfg macvlan.Config) { benchLifeTimed(b, cfg, true) }

func benchLifeTimed(b *testing.B, cfg macvlan.Config, timeDelete bool) {
	if os.Geteuid() != 0 {
		b.Skip("needs root to create namespaces")
	}
	lan := nstest.NewLAN(b, "mvb")
	cont := nstest.NewNS(b, "mvbc")
	spec := macvlan.Spec{Master: lan.Master}
	configure := len(cfg.Addresses) > 0
	b.ResetTimer()
	for range b.N {
		if _, err := macvlan.Create(lan.Host.Path, spec, cont.Path, "eth0"); err != nil {
			b.Fatal(err)
		}
		if configure {
			if err := macvlan.Configure(cont.Path, "eth0", cfg); err != nil {
				b.Fatal(err)
			}
		}
		if !timeDelete {
			b.StopTimer()
		}
		if err := macvlan.Delete(cont.Path, "eth0"); err != nil {
			b.Fatal(err)
		}
		if !timeDelete {
			b.StartTimer()
		}
	}
}
