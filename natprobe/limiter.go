package natprobe

import (
	"net/netip"
	"sync"
	"time"
)

// maxBuckets is the hard cap on the sources the limiter tracks one by one
// (about 100 bytes each, so about 400 KiB at most).
const maxBuckets = 4096

// overflowFactor sizes the bucket shared by the sources that find the
// table full (a flood of spoofed addresses): overflowFactor times one
// source's rate and burst, for all of them together.
const overflowFactor = 10

// limiter is a token bucket per source: an IPv4 address, or an IPv6 /64
// (one host's, and a spoofer's, usual span). The table of buckets never
// grows past maxBuckets: a new source that finds it full shares one
// overflow bucket until idle buckets (refilled to the burst) are pruned,
// at most once per refill period, so a flood of spoofed sources costs
// bounded memory and CPU, and the replies it can reflect are bounded in
// total as well as per victim.
type limiter struct {
	rate  float64
	burst float64
	now   func() time.Time

	mu        sync.Mutex // guards the fields below
	buckets   map[netip.Addr]*bucket
	overflow  bucket
	lastPrune time.Time
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newLimiter(rate float64, burst int, now func() time.Time) *limiter {
	l := &limiter{rate: rate, burst: float64(burst), now: now, buckets: map[netip.Addr]*bucket{}}
	l.overflow = bucket{tokens: overflowFactor * l.burst, last: now()}
	return l
}

// limitKey is the bucket of a source address.
func limitKey(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}

// refill is how long an empty bucket takes to fill up.
func (l *limiter) refill() time.Duration {
	return time.Duration(l.burst / l.rate * float64(time.Second))
}

// allow reports whether src may send one more request now.
func (l *limiter) allow(src netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	key := limitKey(src)
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) >= maxBuckets && now.Sub(l.lastPrune) >= l.refill() {
			l.prune(now)
			l.lastPrune = now
		}
		if len(l.buckets) >= maxBuckets {
			return take(&l.overflow, now, overflowFactor*l.rate, overflowFactor*l.burst)
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[key] = b
	}
	return take(b, now, l.rate, l.burst)
}

// take refills b for the time since its last use and takes one token.
func take(b *bucket, now time.Time, rate, burst float64) bool {
	b.tokens = min(burst, b.tokens+now.Sub(b.last).Seconds()*rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// prune forgets the buckets that have refilled: their sources were idle
// long enough that a fresh bucket is the same.
func (l *limiter) prune(now time.Time) {
	for a, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst {
			delete(l.buckets, a)
		}
	}
}

// size is the number of sources tracked one by one.
func (l *limiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}
