package natprobe

import (
	"net/netip"
	"testing"

	"github.com/pion/stun/v3"
)

// maxReflection is the largest reply-to-request size ratio, counting the
// IP and UDP headers, that docs/natprobe.md promises for any request.
const maxReflection = 2.5

// TestReflection measures, for each kind of request the server answers,
// the bytes it sends per byte it receives (STUN payload and on the wire,
// with IPv4 or IPv6 and UDP headers), and holds it to maxReflection. The
// log prints the table docs/natprobe.md shows.
func TestReflection(t *testing.T) {
	four := mustServer(t, "192.0.2.1:3478", "192.0.2.2:3479")
	one := mustServer(t, "192.0.2.1:3478", "")
	four6 := mustServer(t, "[2001:db8::1]:3478", "[2001:db8::2]:3479")
	src4, src6 := netip.MustParseAddrPort("203.0.113.9:40000"), netip.MustParseAddrPort("[2001:db8:9::9]:40000")
	minimal := func(t *testing.T) []byte { // 20 bytes: a header and nothing else
		m, err := stun.Build(stun.TransactionID, stun.BindingRequest)
		if err != nil {
			t.Fatal(err)
		}
		return m.Raw
	}
	tests := []struct {
		name string
		s    *Server
		src  netip.AddrPort
		pkt  func(t *testing.T) []byte
	}{
		{"binding, minimal (IPv4)", four, src4, minimal},
		{"binding, minimal (IPv6)", four6, src6, minimal},
		{"binding with FINGERPRINT (IPv4)", four, src4, func(t *testing.T) []byte { return request(t, stun.Fingerprint) }},
		{"CHANGE-REQUEST (IPv4)", four, src4, func(t *testing.T) []byte { return request(t, changeRequest{ip: true, port: true}) }},
		{"RESPONSE-PORT (IPv4)", four, src4, func(t *testing.T) []byte { return request(t, responsePort(5000)) }},
		{"single address, binding (IPv4)", one, src4, minimal},
		{"single address, CHANGE-REQUEST: 420 (IPv4)", one, src4, func(t *testing.T) []byte { return request(t, changeRequest{ip: true}) }},
		{"unknown required attribute: 420 (IPv4)", four, src4, func(t *testing.T) []byte {
			return request(t, stun.RawAttribute{Type: 0x0042, Value: []byte{1, 2, 3, 4}})
		}},
		{"RESPONSE-PORT 0: 400 (IPv4)", four, src4, func(t *testing.T) []byte { return request(t, responsePort(0)) }},
	}
	t.Logf("| request | bytes in | bytes out | ratio (payload) | ratio (on the wire) |")
	for _, tt := range tests {
		in := tt.pkt(t)
		out, _, _, err := tt.s.Handle(in, tt.src, 0)
		if out == nil {
			t.Fatalf("%s: no reply (%v)", tt.name, err)
		}
		hdr := 28 // IPv4 + UDP
		if tt.src.Addr().Is6() {
			hdr = 48
		}
		payload := float64(len(out)) / float64(len(in))
		wire := float64(len(out)+hdr) / float64(len(in)+hdr)
		t.Logf("| %s | %d | %d | %.2f | %.2f |", tt.name, len(in), len(out), payload, wire)
		if wire > maxReflection {
			t.Errorf("%s: %d bytes out for %d in, %.2f on the wire, want at most %.2f", tt.name, len(out), len(in), wire, maxReflection)
		}
	}
}
