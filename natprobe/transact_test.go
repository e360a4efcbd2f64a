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
			var est rttEstimator
			// No wall-clock bound on the server: a request that is not
			// dropped gets seconds to be answered before a retransmission
			// (so exactly one send), dropped ones are retransmitted fast,
			// and the exchange with every request dropped runs a second.
			b := backoff{rto: 5 * time.Second, max: 5 * time.Second}
			if tt.drop > 0 {
				b = backoff{rto: 10 * time.Millisecond, max: 40 * time.Millisecond}
			}
			x := exchange{b: b, end: time.Now().Add(10 * time.Second), rtt: &est}
			if tt.wantErr != nil {
				x.end = time.Now().Add(time.Second)
			}
			r, err := x.do(c, srv)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("got error %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				if c.writes < 5 {
					t.Errorf("got %d sends before giving up, want at least 5", c.writes)
				}
				return
			}
			// With drops, the answered send must be answered within the
			// fast RTO to be the last one; a slow machine may retransmit
			// once more, which is right too.
			if r.sends < tt.wantSends || (tt.drop == 0 && r.sends != tt.wantSends) {
				t.Errorf("got %d sends, want %d", r.sends, tt.wantSends)
			}
			// Karn's rule: only a reply to a single send is an RTT sample.
			if _, sampled := est.get(); sampled != (r.sends == 1) {
				t.Errorf("got an RTT sample %v after %d sends, want one only after a single send", sampled, r.sends)
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

// TestExchangeLate checks that a packet other than the reply goes to the
// late hook, which can end the exchange.
func TestExchangeLate(t *testing.T) {
	_, srv := startLoopbackServer(t)
	u, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	c := &lossyConn{UDPConn: u, forged: true}
	seen := 0
	x := exchange{b: backoff{rto: 50 * time.Millisecond, max: 50 * time.Millisecond}, end: time.Now().Add(2 * time.Second),
		late: func([]byte, netip.AddrPort) bool { seen++; return true }}
	if _, err := x.do(c, srv); !errors.Is(err, errLate) || seen != 1 {
		t.Errorf("got %v after %d late packets, want errLate after one", err, seen)
	}
}

func TestSchedule(t *testing.T) {
	p := &Prober{}
	p.defaults()
	tests := []struct {
		name                      string
		rtt                       time.Duration // 0: no sample
		rto, gap, settle, backMax time.Duration
	}{
		{"no sample", 0, 100 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond, 300 * time.Millisecond},
		{"lan", 200 * time.Microsecond, minRTO, minGap, minSettle, 4 * minRTO},
		{"20ms", 20 * time.Millisecond, 40 * time.Millisecond, 10 * time.Millisecond, 20 * time.Millisecond, 160 * time.Millisecond},
		{"100ms", 100 * time.Millisecond, 200 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond, 800 * time.Millisecond},
		{"300ms", 300 * time.Millisecond, 600 * time.Millisecond, maxGap, 300 * time.Millisecond, 2400 * time.Millisecond},
		{"stalled 5s", 5 * time.Second, 2 * maxRTT, maxGap, maxRTT, 8 * maxRTT},
	}
	for _, tt := range tests {
		r := &run{p: p}
		if tt.rtt > 0 {
			r.rtt.add(tt.rtt / 2)
			r.rtt.add(tt.rtt) // the largest sample counts
		}
		s := r.schedule()
		if s.backoff.rto != tt.rto || s.gap != tt.gap || s.settle != tt.settle || s.backoff.max != tt.backMax {
			t.Errorf("%s: got rto %v gap %v settle %v max %v, want %v %v %v %v", tt.name,
				s.backoff.rto, s.gap, s.settle, s.backoff.max, tt.rto, tt.gap, tt.settle, tt.backMax)
		}
	}
}
