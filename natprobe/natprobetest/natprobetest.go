// Package natprobetest starts natprobe servers for tests: an RFC 5780
// server on two loopback addresses (127.0.0.1 and 127.0.0.2 both answer on
// Linux loopback) on ports it finds free, closed when the test ends.
package natprobetest

import (
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/medianet/medianet/natprobe"
)

// Start runs a natprobe server on primary and, when alternate is valid,
// alternate, choosing free ports; it returns the server's addresses,
// primary first.
func Start(t testing.TB, primary, alternate netip.Addr) []netip.AddrPort {
	t.Helper()
	var last error
	for range 50 {
		p := uint16(20000 + rand.IntN(30000))
		cfg := natprobe.ServerConfig{Primary: netip.AddrPortFrom(primary, p), Rate: 1000, Burst: 1000}
		if alternate.IsValid() {
			cfg.Alternate = netip.AddrPortFrom(alternate, p+1)
		}
		s, err := natprobe.NewServer(cfg)
		if err != nil {
			t.Fatalf("natprobetest: new server: %v", err)
		}
		if err := s.Start(); err != nil {
			last = err
			continue
		}
		t.Cleanup(func() { s.Close() })
		return s.Addrs()
	}
	t.Fatalf("natprobetest: no free port pair: %v", last)
	return nil
}

// Loopback starts an RFC 5780 server on 127.0.0.1 and 127.0.0.2.
func Loopback(t testing.TB) []netip.AddrPort {
	t.Helper()
	return Start(t, netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2"))
}
