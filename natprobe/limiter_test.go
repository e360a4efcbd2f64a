package natprobe

import (
	"net"
	"net/netip"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// TestLimiterFloodBounded sends two requests from each of 100,000
// distinct (spoofed) sources within a tenth of a second (a million
// packets a second, faster than buckets refill, so pruning alone would
// not keep the table small): the table never passes its cap,
// the requests allowed are bounded by the cap plus the shared overflow
// bucket, and a source known before the flood keeps its own rate.
func TestLimiterFloodBounded(t *testing.T) {
	now := time.Unix(1000, 0)
	const rate, burst = 50, 100
	l := newLimiter(rate, burst, func() time.Time { return now })
	legit := netip.MustParseAddr("192.0.2.200")
	if !l.allow(legit) {
		t.Fatal("legit source refused before the flood")
	}
	const sources = 100_000
	allowed, legitAllowed, maxSize := 0, 0, 0
	for i := range sources {
		now = now.Add(time.Microsecond)
		src := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		for range 2 {
			if l.allow(src) {
				allowed++
			}
		}
		if i%1000 == 0 && l.allow(legit) {
			legitAllowed++
		}
		maxSize = max(maxSize, l.size())
	}
	elapsed := (sources * time.Microsecond).Seconds()
	bound := 2*2*maxBuckets + int(overflowFactor*(burst+rate*elapsed))
	if maxSize > maxBuckets {
		t.Errorf("table grew to %d sources, want at most %d", maxSize, maxBuckets)
	}
	if allowed > bound {
		t.Errorf("allowed %d of %d spoofed requests, want at most %d", allowed, sources, bound)
	}
	if legitAllowed != sources/1000 {
		t.Errorf("legit source allowed %d of %d requests during the flood, want all (within its rate)", legitAllowed, sources/1000)
	}
	t.Logf("100,000 spoofed sources in %.1f s: table at most %d, %d requests answered (bound %d)", elapsed, maxSize, allowed, bound)
}

func TestLimiterIPv6Prefix(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newLimiter(1, 2, func() time.Time { return now })
	a, b := netip.MustParseAddr("2001:db8:1:2::1"), netip.MustParseAddr("2001:db8:1:2:ffff::9")
	other := netip.MustParseAddr("2001:db8:1:3::1")
	got := []bool{l.allow(a), l.allow(b), l.allow(a), l.allow(other)}
	if want := []bool{true, true, false, true}; !equalBools(got, want) {
		t.Errorf("got %v, want %v: one bucket per /64", got, want)
	}
}

// TestServerSpoofedFlood sends one Binding request from each of 100,000
// distinct loopback addresses (127.1.0.0 upwards, all loopback on Linux)
// to a running server: its limiter stays within its cap, and the server
// still answers afterwards.
func TestServerSpoofedFlood(t *testing.T) {
	var seen atomic.Int64 // requests that reached the limiter
	var s *Server
	for p := uint16(32000); p < 32100 && s == nil; p++ {
		cand, err := NewServer(ServerConfig{Primary: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), p),
			Now: func() time.Time { seen.Add(1); return time.Now() }})
		if err != nil {
			t.Fatal(err)
		}
		if cand.Start() == nil {
			s = cand
		}
	}
	if s == nil {
		t.Fatal("no free port for the server")
	}
	t.Cleanup(func() { s.Close() })
	srv := s.Addrs()[0]
	req, err := newRequest()
	if err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	const sources = 100_000
	// Flow control instead of a sleep: after each batch, wait until the
	// server has taken in what was sent, so that its socket's queue never
	// overflows, however slow the server runs (-race, a busy machine).
	const batch = 100
	lost := int64(0)
	for i := range sources {
		src := netip.AddrFrom4([4]byte{127, byte(1 + i>>16), byte(i >> 8), byte(i)})
		c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0)))
		if err != nil {
			t.Fatalf("source %v: %v", src, err)
		}
		c.WriteToUDPAddrPort(req.Raw, srv)
		c.Close()
		if (i+1)%batch == 0 || i+1 == sources {
			lost += caughtUp(&seen, int64(i+1)-lost)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if n := s.lim.size(); n > maxBuckets {
		t.Errorf("limiter tracks %d sources after the flood, want at most %d", n, maxBuckets)
	}
	if got := seen.Load(); got < sources*9/10 {
		t.Errorf("the server saw %d of %d requests (%d lost); want at least 90%% for the test to mean something", got, sources, lost)
	}
	t.Logf("flood of %d sources (%d reached the limiter): it holds %d, heap in use grew %d KiB",
		sources, seen.Load(), s.lim.size(), (int64(after.HeapInuse)-int64(before.HeapInuse))/1024)
	c := loopbackSocket(t)
	x := exchange{b: backoff{rto: 20 * time.Millisecond, max: 100 * time.Millisecond}, end: time.Now().Add(3 * time.Second)}
	if _, err := x.do(c, srv); err != nil {
		t.Errorf("server after the flood: %v", err)
	}
}

// caughtUp waits until seen reaches want and returns 0, or, when seen
// stops moving for a second short of want (datagrams lost), how many are
// missing. It waits for the condition, not for a fixed time: the second
// only says that nothing is in flight any more.
func caughtUp(seen *atomic.Int64, want int64) int64 {
	last, since := seen.Load(), time.Now()
	for {
		got := seen.Load()
		if got >= want {
			return 0
		}
		if got != last {
			last, since = got, time.Now()
		} else if time.Since(since) > time.Second {
			return want - got
		}
		runtime.Gosched()
		time.Sleep(100 * time.Microsecond)
	}
}
