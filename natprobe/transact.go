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

// reply is one accepted response.
type reply struct {
	from  netip.AddrPort
	msg   *stun.Message
	addrs replyAddrs // zero for error responses
	sends int        // requests sent before this reply arrived
}

// exchange is how one request is retransmitted and its reply awaited.
type exchange struct {
	b   backoff
	end time.Time // give up once this passes
	// late, when set, sees every packet that is not this request's reply
	// (a late answer to an earlier request of the same test); returning
	// true ends the exchange with errLate.
	late func(pkt []byte, from netip.AddrPort) bool
	// rtt, when set, receives the round-trip time of a reply to a request
	// sent once.
	rtt *rttEstimator
}

// do sends a Binding request built from setters to dst, retransmits on
// the schedule until a response with the same transaction ID arrives or
// end passes, and returns that response whatever its source: the caller
// judges the source. Packets with another transaction ID go to late, or
// are ignored.
func (x exchange) do(c packetConn, dst netip.AddrPort, setters ...stun.Setter) (reply, error) {
	req, err := stun.Build(append([]stun.Setter{stun.TransactionID, stun.BindingRequest}, append(setters, stun.Fingerprint)...)...)
	if err != nil {
		return reply{}, fmt.Errorf("natprobe: build request to %v: %w", dst, err)
	}
	buf := make([]byte, 1500)
	var wait time.Duration
	var sent time.Time
	sends := 0
	for {
		now := time.Now()
		if !now.Before(x.end) {
			return reply{sends: sends}, fmt.Errorf("natprobe: request to %v (%d sent): %w", dst, sends, ErrNoReply)
		}
		if _, err := c.WriteToUDPAddrPort(req.Raw, dst); err != nil {
			return reply{sends: sends}, fmt.Errorf("natprobe: send to %v: %w", dst, err)
		}
		sends++
		sent = now
		wait = x.b.next(wait)
		resend := minTime(now.Add(wait), x.end)
		for {
			n, from, err := readUntil(c, buf, resend)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break
			}
			if err != nil {
				return reply{sends: sends}, fmt.Errorf("natprobe: read reply from %v: %w", dst, err)
			}
			if n < 0 {
				continue // e.g. ICMP unreachable reported on the socket
			}
			if r, ok := match(buf[:n], req.TransactionID); ok {
				r.from, r.sends = from, sends
				switch {
				case x.rtt == nil:
				case sends == 1:
					x.rtt.add(time.Since(sent))
				default:
					x.rtt.addHint(time.Since(sent))
				}
				return r, nil
			}
			if x.late != nil && x.late(buf[:n], from) {
				return reply{sends: sends}, errLate
			}
		}
	}
}

// readUntil reads one packet from c before deadline, with the source
// unmapped; n is -1 for a read error worth skipping (an ICMP error
// reported on the socket).
func readUntil(c packetConn, buf []byte, deadline time.Time) (int, netip.AddrPort, error) {
	if err := c.SetReadDeadline(deadline); err != nil {
		return 0, netip.AddrPort{}, fmt.Errorf("natprobe: set read deadline: %w", err)
	}
	n, from, err := c.ReadFromUDPAddrPort(buf)
	switch {
	case err == nil:
		return n, netip.AddrPortFrom(from.Addr().Unmap(), from.Port()), nil
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, net.ErrClosed):
		return 0, netip.AddrPort{}, err
	}
	return -1, netip.AddrPort{}, nil
}

// match decodes pkt and accepts it when it is a response with transaction
// ID id.
func match(pkt []byte, id [stun.TransactionIDSize]byte) (reply, bool) {
	m, ok := decode(pkt)
	if !ok || m.TransactionID != id {
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

// decode parses pkt as a STUN message (on a copy: pion keeps the slice).
func decode(pkt []byte) (*stun.Message, bool) {
	if !stun.IsMessage(pkt) {
		return nil, false
	}
	m := new(stun.Message)
	if err := stun.Decode(append([]byte(nil), pkt...), m); err != nil {
		return nil, false
	}
	return m, true
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

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
