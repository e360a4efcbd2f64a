package natprobe

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/pion/stun/v3"
)

// FuzzServerHandle feeds arbitrary packets to the server: it must never
// panic, never reply to anything but the source IP, and every reply must
// decode and carry the request's transaction ID.
func FuzzServerHandle(f *testing.F) {
	for _, s := range [][]stun.Setter{nil, {changeRequest{ip: true, port: true}}, {responsePort(9)}, {stun.Fingerprint}} {
		m, _ := stun.Build(append([]stun.Setter{stun.TransactionID, stun.BindingRequest}, s...)...)
		f.Add(m.Raw, uint8(0))
	}
	s, err := NewServer(ServerConfig{Primary: netip.MustParseAddrPort("192.0.2.1:3478"), Alternate: netip.MustParseAddrPort("192.0.2.2:3479")})
	if err != nil {
		f.Fatal(err)
	}
	one, _ := NewServer(ServerConfig{Primary: netip.MustParseAddrPort("192.0.2.1:3478")})
	src := netip.MustParseAddrPort("203.0.113.1:1000")
	f.Fuzz(func(t *testing.T, pkt []byte, local uint8) {
		for _, srv := range []*Server{s, one} {
			out, idx, to, _ := srv.Handle(pkt, src, int(local%4))
			if out == nil {
				continue
			}
			if to.Addr() != src.Addr() || idx < 0 || idx >= srv.n {
				t.Fatalf("reply to %v from socket %d: reflection or bad socket", to, idx)
			}
			m := new(stun.Message)
			if err := stun.Decode(out, m); err != nil {
				t.Fatalf("reply does not decode: %v", err)
			}
			if !bytes.Equal(m.TransactionID[:], pkt[8:20]) {
				t.Fatalf("reply transaction ID differs from the request's")
			}
		}
	})
}

// FuzzReadReport feeds arbitrary JSON to the ice reader: it must not panic
// and an accepted report must classify.
func FuzzReadReport(f *testing.F) {
	f.Add([]byte(`{"mapping":"endpoint-independent","filtering":"address-and-port-dependent","classic":"port-restricted-cone","verdict":"needs-turn","natPresent":true,"unsolicitedInboundRemaps":true}`))
	f.Add([]byte(`{"verdict":"blocked","mapping":"unknown","filtering":"unknown","classic":"udp-blocked"}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ReadReport(bytes.NewReader(b))
		if err != nil {
			return
		}
		p := Predict(r, r)
		if p.Decided && p.Direct == p.TURNNeeded {
			t.Fatalf("prediction %+v: direct and turnNeeded agree", p)
		}
	})
}
