package natprobe_test

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/medianet/medianet/natprobe"
	"github.com/medianet/medianet/natprobe/natprobetest"
	"github.com/pion/stun/v3"
)

func fastProber(servers ...netip.AddrPort) *natprobe.Prober {
	return &natprobe.Prober{Servers: servers, Timeout: 2 * time.Second,
		RTO: 20 * time.Millisecond, MaxRTO: 80 * time.Millisecond}
}

func TestProbeLoopbackRFC5780(t *testing.T) {
	addrs := natprobetest.Loopback(t)
	p := fastProber(addrs[0])
	start := time.Unix(5000, 0)
	calls := 0
	p.Now = func() time.Time { calls++; return start.Add(time.Duration(calls-1) * 250 * time.Millisecond) }
	rep, err := p.Probe(context.Background())
	if err != nil {
		t.Fatalf("Probe: %v", err)
	}
	checks := []struct{ field, got, want string }{
		{"mapping", rep.Mapping, natprobe.EndpointIndependent},
		{"filtering", rep.Filtering, natprobe.EndpointIndependent},
		{"classic", rep.Classic, natprobe.ClassicOpen},
		{"verdict", rep.Verdict, natprobe.VerdictOK},
		{"server", rep.Server, addrs[0].String()},
		{"mapped", rep.Mapped, rep.Local},
		{"otherAddress", rep.OtherAddress, addrs[3].String()},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %q, want %q (notes %q)", c.field, c.got, c.want, rep.Notes)
		}
	}
	if rep.NATPresent || !rep.RFC5780 || !rep.PortPreserved {
		t.Errorf("got natPresent %v rfc5780 %v portPreserved %v, want false true true", rep.NATPresent, rep.RFC5780, rep.PortPreserved)
	}
	if rep.Hairpinning == nil || !*rep.Hairpinning {
		t.Errorf("got hairpinning %v, want true on loopback", rep.Hairpinning)
	}
	if rep.UnsolicitedInboundRemaps == nil || *rep.UnsolicitedInboundRemaps {
		t.Errorf("got unsolicitedInboundRemaps %v, want false", rep.UnsolicitedInboundRemaps)
	}
	if rep.DurationMs != 250 {
		t.Errorf("got durationMs %d, want 250 from the injected clock", rep.DurationMs)
	}
}

func TestProbeLocalPort(t *testing.T) {
	addrs := natprobetest.Loopback(t)
	u, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	port := u.LocalAddr().(*net.UDPAddr).AddrPort().Port()
	u.Close()
	p := fastProber(addrs[0])
	p.LocalPort = port
	rep, err := p.Probe(context.Background())
	if err != nil {
		t.Fatalf("Probe: %v", err)
	}
	if got, want := netip.MustParseAddrPort(rep.Local).Port(), port; got != want {
		t.Errorf("got local port %d, want %d", got, want)
	}
}

func TestProbeIPv6TwoServers(t *testing.T) {
	lo6 := netip.MustParseAddr("::1")
	a := natprobetest.Start(t, lo6, netip.Addr{})
	b := natprobetest.Start(t, lo6, netip.Addr{})
	rep, err := fastProber(a[0], b[0]).Probe(context.Background())
	if err != nil {
		t.Fatalf("Probe: %v", err)
	}
	if rep.RFC5780 || rep.OtherAddress != "" {
		t.Errorf("got rfc5780 %v other %q, want false and none from a single-address server", rep.RFC5780, rep.OtherAddress)
	}
	if rep.Mapping != natprobe.EndpointIndependent || rep.MappingVariesByDestination == nil || *rep.MappingVariesByDestination {
		t.Errorf("got mapping %q varies %v, want endpoint-independent, false", rep.Mapping, rep.MappingVariesByDestination)
	}
	if rep.Filtering != natprobe.Unknown || rep.Verdict != natprobe.VerdictOK {
		t.Errorf("got filtering %q verdict %q, want unknown, ok (no NAT)", rep.Filtering, rep.Verdict)
	}
}

func TestProbeBlocked(t *testing.T) {
	u, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close() // a socket that never answers
	p := fastProber(u.LocalAddr().(*net.UDPAddr).AddrPort())
	p.Timeout = 400 * time.Millisecond
	rep, err := p.Probe(context.Background())
	if err != nil {
		t.Fatalf("Probe: %v", err)
	}
	if rep.Verdict != natprobe.VerdictBlocked || rep.Classic != natprobe.ClassicUDPBlocked {
		t.Errorf("got verdict %q classic %q, want blocked, udp-blocked", rep.Verdict, rep.Classic)
	}
	if natprobe.ExitCode(rep.Verdict) != 4 {
		t.Errorf("got exit code %d, want 4", natprobe.ExitCode(rep.Verdict))
	}
}

// ignoringServer claims RFC 5780 (OTHER-ADDRESS, RESPONSE-ORIGIN) but
// answers every request from the socket it arrived on.
func ignoringServer(t *testing.T) netip.AddrPort {
	t.Helper()
	u, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.Close() })
	self := u.LocalAddr().(*net.UDPAddr)
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := u.ReadFromUDP(buf)
			if err != nil {
				return
			}
			req := new(stun.Message)
			if stun.Decode(append([]byte(nil), buf[:n]...), req) != nil {
				continue
			}
			m, _ := stun.Build(stun.NewTransactionIDSetter(req.TransactionID), stun.BindingSuccess,
				&stun.XORMappedAddress{IP: from.IP, Port: from.Port},
				&stun.ResponseOrigin{IP: self.IP, Port: self.Port},
				&stun.OtherAddress{IP: net.IPv4(127, 0, 0, 2), Port: self.Port + 1})
			u.WriteToUDP(m.Raw, from)
		}
	}()
	return self.AddrPort()
}

func TestProbeServerIgnoresChangeRequest(t *testing.T) {
	rep, err := fastProber(ignoringServer(t)).Probe(context.Background())
	if err != nil {
		t.Fatalf("Probe: %v", err)
	}
	if rep.Filtering != natprobe.Unknown {
		t.Errorf("got filtering %q, want unknown when the server ignores CHANGE-REQUEST", rep.Filtering)
	}
	if len(rep.Notes) == 0 {
		t.Errorf("got no notes, want the evidence explained")
	}
}

func TestProbeErrors(t *testing.T) {
	if _, err := (&natprobe.Prober{}).Probe(context.Background()); err == nil {
		t.Errorf("no servers: got nil error")
	}
	mixed := &natprobe.Prober{Servers: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:1"), netip.MustParseAddrPort("[::1]:1")}}
	if _, err := mixed.Probe(context.Background()); err == nil {
		t.Errorf("mixed families: got nil error")
	}
}

func TestProbeLifetimeLoopback(t *testing.T) {
	addrs := natprobetest.Loopback(t)
	p := fastProber(addrs[0])
	p.Lifetime = 200 * time.Millisecond
	rep, err := p.Probe(context.Background())
	if err != nil {
		t.Fatalf("Probe: %v", err)
	}
	if rep.BindingLifetimeAtLeastMs == nil || *rep.BindingLifetimeAtLeastMs != 200 || rep.BindingLifetimeAtMostMs != nil {
		t.Errorf("got lifetime at least %v at most %v, want 200 and none (no NAT)", rep.BindingLifetimeAtLeastMs, rep.BindingLifetimeAtMostMs)
	}
}

// TestProbeDeadFirstServer: the first --server never answers; the second
// becomes the primary within its share of the timeout.
func TestProbeDeadFirstServer(t *testing.T) {
	dead, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer dead.Close()
	addrs := natprobetest.Loopback(t)
	p := fastProber(dead.LocalAddr().(*net.UDPAddr).AddrPort(), addrs[0])
	rep, err := p.Probe(context.Background())
	if err != nil {
		t.Fatalf("Probe: %v", err)
	}
	if rep.Server != addrs[0].String() || rep.Verdict != natprobe.VerdictOK {
		t.Errorf("got server %s verdict %s, want %s ok (notes %q)", rep.Server, rep.Verdict, addrs[0], rep.Notes)
	}
	if len(rep.Notes) == 0 || !strings.Contains(rep.Notes[0], "basic binding") {
		t.Errorf("got notes %q, want the dead server's basic binding noted", rep.Notes)
	}
}
