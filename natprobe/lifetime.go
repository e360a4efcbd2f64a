package natprobe

import (
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/pion/stun/v3"
)

// lifetimeSteps are the fractions of Prober.Lifetime tested, each on its
// own socket, all at once.
var lifetimeSteps = []float64{0.125, 0.25, 0.5, 1}

// lifetime is RFC 5780 section 4.6: socket X binds, stays silent for a
// while, then socket Y asks the primary to answer to X's mapped port with
// RESPONSE-PORT; the binding is alive when X receives that answer, dead
// when it does not while Y's own binding still answers. It returns the
// longest wait that was alive (with every shorter one) and the shortest
// that was dead (nil when none was).
func (r *run) lifetime() (atLeast, atMost *int64) {
	alive := make([]*bool, len(lifetimeSteps))
	var wg sync.WaitGroup
	for i, f := range lifetimeSteps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			alive[i] = r.lifetimeTest(time.Duration(f * float64(r.p.Lifetime)))
		}()
	}
	wg.Wait()
	for i, f := range lifetimeSteps {
		ms := (time.Duration(f * float64(r.p.Lifetime))).Milliseconds()
		switch {
		case alive[i] == nil:
			return atLeast, atMost
		case *alive[i]:
			atLeast = &ms
		default:
			atMost = &ms
			return atLeast, atMost
		}
	}
	return atLeast, atMost
}

func (r *run) lifetimeTest(wait time.Duration) *bool {
	x, err := r.listen(0)
	if err != nil {
		r.note("lifetime: %v", err)
		return nil
	}
	defer x.Close()
	mx, ok := r.bind(x, r.primary, "lifetime binding")
	if !ok {
		return nil
	}
	time.Sleep(wait)
	y, err := r.listen(0)
	if err != nil {
		r.note("lifetime: %v", err)
		return nil
	}
	defer y.Close()
	req, err := stun.Build(stun.TransactionID, stun.BindingRequest, responsePort(mx.Port()), stun.Fingerprint)
	if err != nil {
		return nil
	}
	if r.sendWatch(y, r.primary, req, x) {
		return boolp(true)
	}
	if _, ok := r.bind(y, r.primary, "lifetime control"); ok {
		return boolp(false)
	}
	return nil
}

// sendWatch sends req from one socket to dst with backoff for the Silence
// window and reports whether the watch socket received a packet with
// req's transaction ID.
func (r *run) sendWatch(from *net.UDPConn, dst netip.AddrPort, req *stun.Message, watch *net.UDPConn) bool {
	w := r.silence()
	seen, done := make(chan struct{}), make(chan struct{})
	defer func() { <-done }()
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		watch.SetReadDeadline(w.hard)
		for {
			n, _, err := watch.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			m := new(stun.Message)
			if stun.Decode(append([]byte(nil), buf[:n]...), m) == nil && m.TransactionID == req.TransactionID {
				close(seen)
				return
			}
		}
	}()
	b := r.p.backoff()
	var wait time.Duration
	for sends := 0; !w.over(time.Now(), sends); sends++ {
		from.WriteToUDPAddrPort(req.Raw, dst)
		wait = b.next(wait)
		select {
		case <-seen:
			return true
		case <-time.After(time.Until(minTime(time.Now().Add(wait), w.hard))):
		}
	}
	watch.SetReadDeadline(time.Now()) // stop the reader
	select {
	case <-seen:
		return true
	case <-done:
		return false
	}
}
