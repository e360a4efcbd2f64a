package natprobe

import (
	"errors"
	"net/netip"
	"os"
	"time"
)

// watchResult is what a silent test's watcher makes of one packet.
type watchResult int

const (
	ignore   watchResult = iota // not what the test waits for
	answered                    // the answer the test waits for
	wrong                       // an answer, but one that discredits the test (wrong source)
)

// silentTest is a test whose answer may rightly be silence: send puts one
// request on the wire, watch is the socket where the answer would arrive
// and judge reads each packet there.
type silentTest struct {
	sends int // requests to send; 0 means silentSends
	send  func() error
	watch packetConn
	judge func(pkt []byte, from netip.AddrPort) watchResult
}

// run sends its requests (silentSends by default) spaced by the schedule's gap, reading
// watch in between, then waits the schedule's settle time. It returns the
// first non-ignored judgement, or ignore when nothing came: the caller
// then runs a control exchange on watch (with late set from lateHook) before
// it calls the silence "filtered".
func (s silentTest) run(sch schedule, end time.Time) (watchResult, error) {
	buf := make([]byte, 1500)
	n := s.sends
	if n <= 0 {
		n = silentSends
	}
	for i := range n {
		if err := s.send(); err != nil {
			return ignore, err
		}
		wait := sch.gap
		if i == n-1 {
			wait = sch.settle
		}
		deadline := minTime(time.Now().Add(wait), end)
		for {
			got, from, err := readUntil(s.watch, buf, deadline)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break
			}
			if err != nil {
				return ignore, err
			}
			if got < 0 || s.judge == nil {
				continue
			}
			if v := s.judge(buf[:got], from); v != ignore {
				return v, nil
			}
		}
		if !time.Now().Before(end) {
			break
		}
	}
	return ignore, nil
}

// lateHook adapts judge for exchange.late: a packet judged answered ends
// the control exchange, so an answer that arrives after the silent phase
// but before the control reply still counts. A wrong one is recorded.
func (s silentTest) lateHook(got *watchResult) func([]byte, netip.AddrPort) bool {
	return func(pkt []byte, from netip.AddrPort) bool {
		if s.judge == nil {
			return false
		}
		v := s.judge(pkt, from)
		if v != ignore {
			*got = v
			return true
		}
		return false
	}
}
