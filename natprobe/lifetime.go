package natprobe

import (
	"sync"
	"time"
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
	req, err := newRequest(responsePort(mx.Port()))
	if err != nil {
		return nil
	}
	// The answer would reach x; the control binding runs on y, whose own
	// binding shows the path still works.
	st := silentTest{
		send:  func() error { _, err := y.WriteToUDPAddrPort(req.Raw, r.primary); return err },
		watch: x,
		judge: sees(req),
	}
	v, err := st.run(r.schedule(), r.end)
	switch {
	case err != nil:
		r.note("lifetime: %v", err)
		return nil
	case v == answered:
		return boolp(true)
	}
	if _, ok := r.bind(y, r.primary, "lifetime control"); ok {
		return boolp(false)
	}
	return nil
}
