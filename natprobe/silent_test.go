package natprobe

import (
	"net"
	"net/netip"
	"testing"
	"time"
)

// answerServer answers every Binding request, as a single-address
// natprobe server would. With holdFirst it holds its answers to the first
// transaction it sees until a request of another transaction (the control
// binding) arrives, then sends them before that one's answer: a path
// slower than the prober believes, whatever the scheduler does.
func answerServer(t *testing.T, holdFirst bool) netip.AddrPort {
	t.Helper()
	u, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.Close() })
	self := u.LocalAddr().(*net.UDPAddr).AddrPort()
	s, err := NewServer(ServerConfig{Primary: self})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		buf := make([]byte, 1500)
		var first []byte // the held transaction's ID
		type answer struct {
			b  []byte
			to netip.AddrPort
		}
		var held []answer
		for {
			n, from, err := u.ReadFromUDPAddrPort(buf)
			if err != nil || n < 20 {
				return
			}
			out, _, to, _ := s.Handle(buf[:n], netip.AddrPortFrom(from.Addr().Unmap(), from.Port()), 0)
			if out == nil {
				continue
			}
			id := buf[8:20]
			switch {
			case holdFirst && first == nil:
				first = append([]byte(nil), id...)
				fallthrough
			case holdFirst && string(id) == string(first):
				held = append(held, answer{append([]byte(nil), out...), to})
				continue
			}
			for _, a := range held {
				u.WriteToUDPAddrPort(a.b, a.to)
			}
			held = nil
			u.WriteToUDPAddrPort(out, to)
		}
	}()
	return self
}

func loopbackSocket(t *testing.T) *net.UDPConn {
	t.Helper()
	u, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.Close() })
	return u
}

// TestSilentTestLateAnswer: the server answers the test's requests only
// after the silent phase (when the control binding arrives), so the
// silent phase ends before any answer; the answer then arrives during the
// control binding and must count as answered, not as silence.
func TestSilentTestLateAnswer(t *testing.T) {
	srv := answerServer(t, true)
	p := &Prober{}
	p.defaults()
	r := &run{p: p, end: time.Now().Add(3 * time.Second), primary: srv}
	r.rtt.add(time.Millisecond)
	c := loopbackSocket(t)
	req, err := newRequest()
	if err != nil {
		t.Fatal(err)
	}
	sends := 0
	st := silentTest{
		send:  func() error { sends++; _, err := c.WriteToUDPAddrPort(req.Raw, srv); return err },
		watch: c,
		judge: sees(req),
	}
	start := time.Now()
	v, err := st.run(r.schedule(), r.end)
	if err != nil || v != ignore {
		t.Fatalf("silent phase: got %v, %v, want nothing seen yet (it took %v)", v, err, time.Since(start))
	}
	if sends != silentSends {
		t.Errorf("got %d sends, want %d", sends, silentSends)
	}
	if got := r.control(c, st, "test"); got != answered {
		t.Errorf("control: got %v, want answered (the late answer beats the control reply)", got)
	}
}

// TestSilentTestSilence: nothing ever answers the test's requests while
// the control binding is answered: silence, after every send.
func TestSilentTestSilence(t *testing.T) {
	srv := answerServer(t, false)
	p := &Prober{}
	p.defaults()
	r := &run{p: p, end: time.Now().Add(3 * time.Second), primary: srv}
	c := loopbackSocket(t)
	sink := loopbackSocket(t) // never answers
	req, err := newRequest()
	if err != nil {
		t.Fatal(err)
	}
	sends := 0
	st := silentTest{
		send: func() error {
			sends++
			_, err := c.WriteToUDPAddrPort(req.Raw, sink.LocalAddr().(*net.UDPAddr).AddrPort())
			return err
		},
		watch: c,
		judge: sees(req),
	}
	if got := r.silentOutcome(st, c, "test"); got == nil || *got {
		t.Errorf("got %v, want false (silence confirmed by the control)", got)
	}
	if sends != silentSends {
		t.Errorf("got %d sends, want %d", sends, silentSends)
	}
	// Without a control answer, silence decides nothing.
	r.primary = sink.LocalAddr().(*net.UDPAddr).AddrPort()
	r.end = time.Now().Add(300 * time.Millisecond)
	if got := r.silentOutcome(st, c, "test"); got != nil {
		t.Errorf("no control answer: got %v, want nil (undecided)", *got)
	}
}
