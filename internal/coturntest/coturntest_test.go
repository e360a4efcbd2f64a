package coturntest_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/medianet/medianet/internal/coturntest"
	"github.com/medianet/medianet/internal/natlab"
	"github.com/medianet/medianet/natprobe"
)

// TestStart starts coturn as an RFC 5780 STUN server and as a TURN server
// with TLS, and talks to both from a host behind MASQUERADE.
func TestStart(t *testing.T) {
	l := natlab.New(t, natlab.Masquerade, 0)
	coturntest.Start(t, l.Server, coturntest.Options{IPs: []netip.Addr{natlab.ServerIP1, natlab.ServerIP2}, STUNOnly: true})
	n, err := natprobe.NewNetnsNetwork(natlab.NetnsPath(l.Client))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	p := &natprobe.Prober{Servers: []netip.AddrPort{netip.MustParseAddrPort("198.18.0.10:3478")}, Net: n, Timeout: 3 * time.Second}
	rep, err := p.Probe(context.Background())
	if err != nil || !rep.RFC5780 || rep.Filtering != natprobe.AddressAndPortDependent {
		t.Errorf("probe of the STUN-only coturn: got %+v, %v, want RFC 5780 and APDF filtering", rep, err)
	}

	turn := coturntest.Start(t, l.Server, coturntest.Options{IPs: []netip.Addr{natlab.ServerIP1}, Port: 3480, TLSPort: 5350, TLS: true,
		Users: map[string]string{"u": "p"}})
	pem, err := os.ReadFile(turn.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	conn, err := n.Dial("tcp", netip.MustParseAddrPort("198.18.0.10:5350"), 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	tc := tls.Client(conn, &tls.Config{ServerName: "198.18.0.10", RootCAs: pool, MinVersion: tls.VersionTLS12})
	if err := tc.HandshakeContext(context.Background()); err != nil {
		t.Errorf("TLS to coturn with its self-signed certificate as CA: %v", err)
	}
}
