package natprobe

import (
	"bytes"
	"errors"
	"net"
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
		if p.Decided && p.Direct != (p.DirectIfASendsFirst || p.DirectIfBSendsFirst) {
			t.Fatalf("prediction %+v: direct is not the union of the two orders", p)
		}
		if p.OrderDependent != (p.Decided && p.DirectIfASendsFirst != p.DirectIfBSendsFirst) || p.OrderDependent != (p.AdviceHolds != "") {
			t.Fatalf("prediction %+v: order dependence and its condition disagree", p)
		}
		Summarize(r, nil)
	})
}

// FuzzParseTURNURI feeds arbitrary --server values to the TURN URI
// parser: it must not panic, and what it accepts must be usable.
func FuzzParseTURNURI(f *testing.F) {
	for _, s := range []string{"turn:198.51.100.1:3478", "turn:h?transport=tcp", "turns:h:443", "turn:[2001:db8::1]:3478?transport=udp",
		"stun:h:3478", "turns:h?transport=udp", "turn:h:0", "turn::", "turn:h:3478?transport=tcp&x=1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		s, err := ParseTURNURI(raw)
		if err != nil {
			if !errors.Is(err, ErrBadTURNURI) {
				t.Fatalf("%q: error %v is not ErrBadTURNURI", raw, err)
			}
			return
		}
		if s.Host == "" || s.Port == 0 || (s.Transport != TransportUDP && s.Transport != TransportTCP && s.Transport != TransportTLS) {
			t.Fatalf("%q: accepted as %+v", raw, s)
		}
	})
}

// FuzzSnifferRecord feeds arbitrary packets to the TURN check's view of
// the server's responses: it must not panic, and what it records must be
// sane.
func FuzzSnifferRecord(f *testing.F) {
	ok, _ := stun.Build(stun.TransactionID, stun.NewType(stun.MethodAllocate, stun.ClassSuccessResponse),
		&stun.XORMappedAddress{IP: net.IPv4(198, 51, 100, 1), Port: 4000}, stun.RawAttribute{Type: stun.AttrLifetime, Value: []byte{0, 0, 2, 88}})
	e, _ := stun.Build(stun.TransactionID, stun.NewType(stun.MethodAllocate, stun.ClassErrorResponse), stun.CodeUnauthorized,
		stun.NewRealm("r"), stun.NewNonce("n"))
	f.Add(ok.Raw)
	f.Add(e.Raw)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, pkt []byte) {
		var s sniffer
		if m, ok := decode(pkt); ok {
			s.record(m)
		}
		st := s.state()
		if st.lifetime < 0 || st.unauthorized > 1 || (st.errCode != 0 && !st.answered) {
			t.Fatalf("recorded %+v from one packet", st)
		}
	})
}
