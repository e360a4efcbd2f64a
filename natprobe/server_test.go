package natprobe

import (
	"net/netip"
	"testing"
	"time"

	"github.com/pion/stun/v3"
)

func mustServer(t *testing.T, primary, alternate string) *Server {
	t.Helper()
	cfg := ServerConfig{Primary: netip.MustParseAddrPort(primary)}
	if alternate != "" {
		cfg.Alternate = netip.MustParseAddrPort(alternate)
	}
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	return s
}

func request(t *testing.T, setters ...stun.Setter) []byte {
	t.Helper()
	m, err := stun.Build(append([]stun.Setter{stun.TransactionID, stun.BindingRequest}, setters...)...)
	if err != nil {
		t.Fatal(err)
	}
	return m.Raw
}

func TestServerHandle(t *testing.T) {
	src := netip.MustParseAddrPort("203.0.113.9:40000")
	four := mustServer(t, "192.0.2.1:3478", "192.0.2.2:3479")
	one := mustServer(t, "192.0.2.1:3478", "")
	tests := []struct {
		name      string
		s         *Server
		local     int
		setters   []stun.Setter
		wantIdx   int
		wantTo    string
		wantOther string // "" means absent
		wantCode  int    // 0 means success
	}{
		{"basic", four, 0, nil, 0, "203.0.113.9:40000", "192.0.2.2:3479", 0},
		{"basic with fingerprint", four, 0, []stun.Setter{stun.Fingerprint}, 0, "203.0.113.9:40000", "192.0.2.2:3479", 0},
		{"change ip and port", four, 0, []stun.Setter{changeRequest{ip: true, port: true}}, 3, "203.0.113.9:40000", "192.0.2.2:3479", 0},
		{"change port", four, 0, []stun.Setter{changeRequest{port: true}}, 1, "203.0.113.9:40000", "192.0.2.2:3479", 0},
		{"change ip", four, 0, []stun.Setter{changeRequest{ip: true}}, 2, "203.0.113.9:40000", "192.0.2.2:3479", 0},
		{"on alternate socket", four, 3, []stun.Setter{changeRequest{ip: true, port: true}}, 0, "203.0.113.9:40000", "192.0.2.1:3478", 0},
		{"response port stays on source ip", four, 0, []stun.Setter{responsePort(5000)}, 0, "203.0.113.9:5000", "192.0.2.2:3479", 0},
		{"response port zero", four, 0, []stun.Setter{responsePort(0)}, 0, "203.0.113.9:40000", "", 400},
		{"unknown required attribute", four, 0, []stun.Setter{stun.RawAttribute{Type: 0x0042, Value: []byte{1, 2, 3, 4}}}, 0, "203.0.113.9:40000", "", 420},
		{"unknown optional attribute ignored", four, 0, []stun.Setter{stun.RawAttribute{Type: 0x8042, Value: []byte{1}}}, 0, "203.0.113.9:40000", "192.0.2.2:3479", 0},
		{"single address basic", one, 0, nil, 0, "203.0.113.9:40000", "", 0},
		{"single address change request", one, 0, []stun.Setter{changeRequest{ip: true, port: true}}, 0, "203.0.113.9:40000", "", 420},
		{"single address zero change request", one, 0, []stun.Setter{changeRequest{}}, 0, "203.0.113.9:40000", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := request(t, tt.setters...)
			out, idx, to, err := tt.s.Handle(req, src, tt.local)
			if err != nil || out == nil {
				t.Fatalf("Handle: reply %v, err %v", out != nil, err)
			}
			if idx != tt.wantIdx || to.String() != tt.wantTo {
				t.Errorf("got socket %d to %v, want %d to %v", idx, to, tt.wantIdx, tt.wantTo)
			}
			m := new(stun.Message)
			if err := stun.Decode(out, m); err != nil {
				t.Fatalf("decode reply: %v", err)
			}
			if tt.wantCode != 0 {
				var ec stun.ErrorCodeAttribute
				if err := ec.GetFrom(m); err != nil || int(ec.Code) != tt.wantCode {
					t.Errorf("got error code %v (%v), want %d", ec.Code, err, tt.wantCode)
				}
				return
			}
			a, err := parseReply(m)
			if err != nil {
				t.Fatalf("parseReply: %v", err)
			}
			if a.xorMapped != src || a.mapped != src {
				t.Errorf("got mapped %v xor %v, want %v", a.mapped, a.xorMapped, src)
			}
			if got, want := a.origin, tt.s.addrs[tt.wantIdx]; got != want {
				t.Errorf("got RESPONSE-ORIGIN %v, want %v", got, want)
			}
			got := ""
			if a.other.IsValid() {
				got = a.other.String()
			}
			if got != tt.wantOther {
				t.Errorf("got OTHER-ADDRESS %q, want %q", got, tt.wantOther)
			}
			// FINGERPRINT in the reply exactly when the request had one.
			if rm, _ := decode(req); rm.Contains(stun.AttrFingerprint) != m.Contains(stun.AttrFingerprint) {
				t.Errorf("reply has FINGERPRINT %v, request %v", m.Contains(stun.AttrFingerprint), rm.Contains(stun.AttrFingerprint))
			} else if m.Contains(stun.AttrFingerprint) {
				if err := stun.Fingerprint.Check(m); err != nil {
					t.Errorf("reply fingerprint: %v", err)
				}
			}
		})
	}
}

func TestServerHandleDrops(t *testing.T) {
	s := mustServer(t, "192.0.2.1:3478", "192.0.2.2:3479")
	src := netip.MustParseAddrPort("203.0.113.9:40000")
	bad := request(t, stun.Fingerprint)
	bad[len(bad)-1] ^= 0xff
	ind, _ := stun.Build(stun.TransactionID, stun.NewType(stun.MethodBinding, stun.ClassIndication))
	succ, _ := stun.Build(stun.TransactionID, stun.BindingSuccess)
	tests := []struct {
		name  string
		pkt   []byte
		local int
	}{
		{"empty", nil, 0},
		{"not stun", []byte("hello, world, this is not stun"), 0},
		{"bad fingerprint", bad, 0},
		{"indication", ind.Raw, 0},
		{"response", succ.Raw, 0},
		{"socket out of range", request(t), 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _, _, _ := s.Handle(tt.pkt, src, tt.local)
			if out != nil {
				t.Errorf("got a reply of %d bytes, want none", len(out))
			}
		})
	}
}

func TestNewServerErrors(t *testing.T) {
	tests := []struct{ primary, alternate string }{
		{"0.0.0.0:3478", ""},
		{"192.0.2.1:0", ""},
		{"192.0.2.1:3478", "192.0.2.1:3479"},
		{"192.0.2.1:3478", "192.0.2.2:3478"},
		{"192.0.2.1:3478", "[2001:db8::1]:3479"},
		{"192.0.2.1:3478", "0.0.0.0:3479"},
	}
	for _, tt := range tests {
		cfg := ServerConfig{Primary: netip.MustParseAddrPort(tt.primary)}
		if tt.alternate != "" {
			cfg.Alternate = netip.MustParseAddrPort(tt.alternate)
		}
		if _, err := NewServer(cfg); err == nil {
			t.Errorf("NewServer(%s, %s): got nil error, want one", tt.primary, tt.alternate)
		}
	}
}

func TestLimiter(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newLimiter(10, 3, func() time.Time { return now })
	a, b := netip.MustParseAddr("192.0.2.7"), netip.MustParseAddr("192.0.2.8")
	var got []bool
	for range 4 {
		got = append(got, l.allow(a))
	}
	if want := []bool{true, true, true, false}; !equalBools(got, want) {
		t.Errorf("burst: got %v, want %v", got, want)
	}
	if !l.allow(b) {
		t.Errorf("other source: got refused, want allowed")
	}
	now = now.Add(100 * time.Millisecond) // one token at 10/s
	if got, want := []bool{l.allow(a), l.allow(a)}, []bool{true, false}; !equalBools(got, want) {
		t.Errorf("refill: got %v, want %v", got, want)
	}
}

func equalBools(a, b []bool) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
