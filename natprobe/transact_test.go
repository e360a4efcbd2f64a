package natprobe

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/pion/stun/v3"
)

// lossyConn drops the first drop writes and, once, injects a forged reply
// with a wrong transaction ID before the real one.
type lossyConn struct {
	*net.UDPConn
	mu     sync.Mutex
	drop   int
	writes int
	forged bool
}

func (c *lossyConn) WriteToUDPAddrPort(b []byte, a netip.AddrPort) (int, error) {
	c.mu.Lock()
	c.writes++
	drop := c.writes <= c.drop
	c.mu.Unlock()
	if drop {
		return len(b), nil
	}
	if c.forged {
		m, _ := stun.Build(stun.TransactionID, stun.BindingSuccess,
			&stun.XORMappedAddress{IP: net.IPv4(6, 6, 6, 6), Port: 6})
		c.UDPConn.WriteToUDPAddrPort(m.Raw, c.LocalAddr().(*net.UDPAddr).AddrPort())
	}
	return c.UDPConn.WriteToUDPAddrPort(b, a)
}

func startLoopbackServer(t *testing.T) (*Server, netip.AddrPort) {
	t.Helper()
	for p := uint16(31000); p < 31100; p += 2 {
		s, err := NewServer(ServerConfig{Primary: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), p)})
		if err != nil {
			t.Fatal(err)
		}
		if s.Start() == nil {
			t.Cleanup(func() { s.Close() })
			return s, s.Addrs()[0]
		}
	}
	t.Fatal("no free port for the loopback server")
	return nil, netip.AddrPort{}
}

func TestTransactRetransmits(t *testing.T) {
	_, srv := startLoopbackServer(t)
	tests := []struct {
		name      string
		drop      int
		forged    bool
		wantSends int
		wantErr   error
	}{
		{"first answered", 0, false, 1, nil},
		{"two lost", 2, false, 3, nil},
		{"forged reply ignored", 0, true, 1, nil},
		{"all lost", 100, false, 0, ErrNoReply},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			defer u.Close()
			c := &lossyConn{UDPConn: u, drop: tt.drop, forged: tt.forged}
			r, err := transact(c, srv, backoff{rto: 10 * time.Millisecond, max: 40 * time.Millisecond}, until(time.Now().Add(300*time.Millisecond)))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("got error %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				if c.writes < 5 {
					t.Errorf("got %d sends before giving up, want at least 5", c.writes)
				}
				return
			}
			if r.sends != tt.wantSends {
				t.Errorf("got %d sends, want %d", r.sends, tt.wantSends)
			}
			if got, want := r.addrs.xorMapped, u.LocalAddr().(*net.UDPAddr).AddrPort(); got != want {
				t.Errorf("got mapped %v, want %v (a forged reply was accepted?)", got, want)
			}
			if err := checkSource(r, srv); err != nil {
				t.Errorf("checkSource: %v", err)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	b := backoff{rto: 100 * time.Millisecond, max: 400 * time.Millisecond}
	var got []time.Duration
	var w time.Duration
	for range 5 {
		w = b.next(w)
		got = append(got, w)
	}
	want := []time.Duration{100, 200, 400, 400, 400}
	for i := range want {
		if got[i] != want[i]*time.Millisecond {
			t.Fatalf("got %v, want %v ms", got, want)
		}
	}
}

func TestCheckSource(t *testing.T) {
	a := netip.MustParseAddrPort("192.0.2.1:3478")
	b := netip.MustParseAddrPort("192.0.2.2:3479")
	ok, _ := stun.Build(stun.TransactionID, stun.BindingSuccess)
	e, _ := stun.Build(stun.TransactionID, stun.BindingError, stun.CodeUnknownAttribute)
	tests := []struct {
		name    string
		r       reply
		wantErr bool
	}{
		{"match", reply{from: a, msg: ok, addrs: replyAddrs{origin: a}}, false},
		{"no origin", reply{from: a, msg: ok}, false},
		{"wrong source", reply{from: b, msg: ok, addrs: replyAddrs{origin: b}}, true},
		{"origin disagrees", reply{from: a, msg: ok, addrs: replyAddrs{origin: b}}, true},
		{"error response", reply{from: a, msg: e}, true},
	}
	for _, tt := range tests {
		if err := checkSource(tt.r, a); (err != nil) != tt.wantErr {
			t.Errorf("%s: got %v, want error %v", tt.name, err, tt.wantErr)
		}
	}
}

func TestWindow(t *testing.T) {
	now := time.Unix(100, 0)
	w := window{end: now, hard: now.Add(time.Second), min: 3}
	tests := []struct {
		at    time.Duration
		sends int
		want  bool
	}{
		{-time.Millisecond, 5, false}, // before end
		{0, 2, false},                 // end passed, too few sends
		{0, 3, true},                  // end passed, enough sends
		{time.Second, 0, true},        // hard bound
	}
	for _, tt := range tests {
		if got := w.over(now.Add(tt.at), tt.sends); got != tt.want {
			t.Errorf("over(%v, %d): got %v, want %v", tt.at, tt.sends, got, tt.want)
		}
	}
}

// TestTransactMinSends checks a silent test still sends its minimum when
// its soft window has already passed (a starved process).
func TestTransactMinSends(t *testing.T) {
	_, srv := startLoopbackServer(t)
	u, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	c := &lossyConn{UDPConn: u, drop: 100}
	now := time.Now()
	_, err = transact(c, srv, backoff{rto: 5 * time.Millisecond, max: 5 * time.Millisecond},
		window{end: now, hard: now.Add(2 * time.Second), min: 4})
	if !errors.Is(err, ErrNoReply) || c.writes != 4 {
		t.Errorf("got %d sends, %v, want 4 and ErrNoReply", c.writes, err)
	}
}
