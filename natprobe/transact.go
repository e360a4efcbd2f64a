package natprobe

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/pion/stun/v3"
)

// packetConn is what a test needs from its socket; *net.UDPConn has it,
// and unit tests wrap it to drop or forge packets.
type packetConn interface {
	WriteToUDPAddrPort(b []byte, addr netip.AddrPort) (int, error)
	ReadFromUDPAddrPort(b []byte) (int, netip.AddrPort, error)
	SetReadDeadline(t time.Time) error
}

// backoff is a retransmission schedule: the first wait is rto, each next
// one doubles up to max.
type backoff struct{ rto, max time.Duration }

func (b backoff) next(cur time.Duration) time.Duration {
	if cur == 0 {
		return b.rto
	}
	return min(2*cur, b.max)
}

// window bounds a transaction: it gives up once end has passed and at
// least min requests were sent, or when hard passes whatever the count
// (so a starved process still sends enough before calling silence).
type window struct {
	end, hard time.Time
	min       int
}

func (w window) over(now time.Time, sends int) bool {
	return !now.Before(w.hard) || (!now.Before(w.end) && sends >= w.min)
}

// until is a window for a request that should be answered: it retries
// until end.
func until(end time.Time) window { return window{end: end, hard: end} }

// reply is one accepted response.
type reply struct {
	from  netip.AddrPort
	msg   *stun.Message
	addrs replyAddrs // zero for error responses
	sends int        // requests sent before this reply arrived
}

// transact sends a Binding request built from setters to dst, retransmits
// on the schedule until a response with the same transaction ID arrives or
// the window is over, and returns that response whatever its source: the caller
// judges the source. Packets with another transaction ID are ignored.
func transact(c packetConn, dst netip.AddrPort, b backoff, w window, setters ...stun.Setter) (reply, error) {
	req, err := stun.Build(append([]stun.Setter{stun.TransactionID, stun.BindingRequest}, append(setters, stun.Fingerprint)...)...)
	if err != nil {
		return reply{}, fmt.Errorf("natprobe: build request to %v: %w", dst, err)
	}
	buf := make([]byte, 1500)
	var wait time.Duration
	sends := 0
	for {
		now := time.Now()
		if w.over(now, sends) {
			return reply{sends: sends}, fmt.Errorf("natprobe: request to %v (%d sent): %w", dst, sends, ErrNoReply)
		}
		if _, err := c.WriteToUDPAddrPort(req.Raw, dst); err != nil {
			return reply{sends: sends}, fmt.Errorf("natprobe: send to %v: %w", dst, err)
		}
		sends++
		wait = b.next(wait)
		resend := now.Add(wait)
		if resend.After(w.hard) {
			resend = w.hard
		}
		for {
			if err := c.SetReadDeadline(resend); err != nil {
				return reply{sends: sends}, fmt.Errorf("natprobe: set read deadline: %w", err)
			}
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					break
				}
				if errors.Is(err, net.ErrClosed) {
					return reply{sends: sends}, fmt.Errorf("natprobe: read reply from %v: %w", dst, err)
				}
				continue // e.g. ICMP unreachable reported on the socket
			}
			if r, ok := match(buf[:n], req.TransactionID); ok {
				r.from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
				r.sends = sends
				return r, nil
			}
		}
	}
}

// match decodes pkt and accepts it when it is a response with transaction
// ID id.
func match(pkt []byte, id [stun.TransactionIDSize]byte) (reply, bool) {
	if !stun.IsMessage(pkt) {
		return reply{}, false
	}
	m := new(stun.Message)
	if err := stun.Decode(append([]byte(nil), pkt...), m); err != nil {
		return reply{}, false
	}
	if m.TransactionID != id {
		return reply{}, false
	}
	switch m.Type {
	case stun.BindingSuccess:
		a, err := parseReply(m)
		if err != nil {
			return reply{}, false
		}
		return reply{msg: m, addrs: a}, true
	case stun.BindingError:
		return reply{msg: m}, true
	}
	return reply{}, false
}

// checkSource returns an error when r did not come from want or its
// RESPONSE-ORIGIN disagrees with the source it came from.
func checkSource(r reply, want netip.AddrPort) error {
	if r.msg.Type != stun.BindingSuccess {
		var ec stun.ErrorCodeAttribute
		_ = ec.GetFrom(r.msg)
		return fmt.Errorf("natprobe: reply from %v is error %d %s", r.from, ec.Code, ec.Reason)
	}
	if r.from != want {
		return fmt.Errorf("natprobe: reply from %v, want %v", r.from, want)
	}
	if o := r.addrs.origin; o.IsValid() && o != r.from {
		return fmt.Errorf("natprobe: reply from %v carries RESPONSE-ORIGIN %v", r.from, o)
	}
	return nil
}
