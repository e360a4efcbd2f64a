package natprobe

import (
	"sync"
	"time"
)

// silentSends is how many requests a test whose answer may rightly be
// silence (a CHANGE-REQUEST, a hairpin packet, a lifetime check) sends
// before it may count as unanswered. With 25% loss each way a request and
// its reply both pass with probability 0.75^2, so all ten fail with
// probability 0.4375^10, about 1 in 4,000; and silence counts only when a
// control binding on the same socket answers afterwards.
const silentSends = 10

// Bounds of the timing derived from the measured round-trip time.
const (
	minRTO     = 10 * time.Millisecond // first retransmission, floor
	minGap     = 2 * time.Millisecond  // between the sends of a silent test, floor
	maxGap     = 50 * time.Millisecond // between the sends of a silent test, ceiling
	minSettle  = 5 * time.Millisecond  // wait after the last send of a silent test, floor
	maxRTT     = time.Second           // a larger sample (a stalled process) counts as this
	rtoPerRTT  = 2                     // first retransmission, in round-trip times
	maxRTOs    = 4                     // longest retransmission interval, in first intervals
	gapPerRTT  = 0.5                   // spacing of silent sends, in round-trip times
	settleRTTs = 1                     // wait after the last silent send, in round-trip times
)

// rttEstimator keeps the largest round-trip time measured from replies to
// requests sent once (Karn's rule: a reply after a retransmission could
// answer any of the sends, so it is not a sample). The largest sample is
// used so that waits sized from it err on the long side. A reply after a
// retransmission still gives a hint (the time since the last send, which
// may be short of the real RTT): good enough to time retransmissions,
// where an early one costs a duplicate, never to size a silent wait.
type rttEstimator struct {
	mu      sync.Mutex // guards the fields below
	max     time.Duration
	samples int
	hint    time.Duration
}

func (e *rttEstimator) add(d time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.samples++
	e.max = max(e.max, d)
}

func (e *rttEstimator) addHint(d time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.hint = max(e.hint, d)
}

// get returns the estimate and whether any sample was taken.
func (e *rttEstimator) get() (time.Duration, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.max, e.samples > 0
}

func (e *rttEstimator) getHint() time.Duration {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.hint
}

// schedule is the timing of one test, derived from the round-trip time.
type schedule struct {
	backoff backoff       // retransmissions of a request that should be answered
	gap     time.Duration // between the sends of a silent test
	settle  time.Duration // after the last send of a silent test
}

// schedule sizes retransmissions and silent waits from the measured RTT;
// before any sample it uses the Prober's RTO as the round-trip time (and
// a hint, when there is one, for retransmissions only).
func (r *run) schedule() schedule {
	rtt, ok := r.rtt.get()
	rtt = min(rtt, maxRTT)
	if !ok {
		s := schedule{backoff: r.p.backoff(), gap: clampDur(time.Duration(gapPerRTT*float64(r.p.RTO)), minGap, maxGap), settle: r.p.RTO}
		if hint := r.rtt.getHint(); hint > 0 {
			s.backoff = rttBackoff(min(hint, maxRTT))
		}
		return s
	}
	return schedule{
		backoff: rttBackoff(rtt),
		gap:     clampDur(time.Duration(gapPerRTT*float64(rtt)), minGap, maxGap),
		settle:  max(minSettle, settleRTTs*rtt),
	}
}

func rttBackoff(rtt time.Duration) backoff {
	rto := max(minRTO, rtoPerRTT*rtt)
	return backoff{rto: rto, max: maxRTOs * rto}
}

func clampDur(d, lo, hi time.Duration) time.Duration { return min(max(d, lo), hi) }
