package doctor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/medianet/medianet/macvlan"
	"golang.org/x/sys/unix"
)

// target is one address to ask.
type target struct {
	addr netip.Addr
	role string
}

// ask probes t from the test MAC and, as the control, from the parent's
// own MAC, and judges the answers. IPv4 asks both at once: ARP replies
// are unicast to the MAC that asked. IPv6 asks the control only when the
// test MAC got no answer: replies to duplicate address detection go to
// all-nodes, so both links would see each other's answers.
func (l *lab) ask(ctx context.Context, opts Options, t target) (Target, error) {
	res := Target{Address: t.addr, Role: t.role}
	v4 := t.addr.Is4()
	proto := uint16(unix.ETH_P_IPV6)
	if v4 {
		proto = unix.ETH_P_ARP
	}
	ts, err := l.test.open(proto)
	if err != nil {
		return res, err
	}
	defer ts.close()
	var cs *socket
	if cs, err = l.control.open(proto); err != nil {
		return res, err
	}
	defer cs.close()

	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	controlDone := make(chan reply, 1)
	if v4 {
		go func() { controlDone <- cs.exchange(cctx, opts, t.addr, 60) }()
	}
	tr := ts.exchange(ctx, opts, t.addr, 60)
	var cr reply
	switch {
	case v4 && tr.ok:
		cancel() // the control is not needed any more
		cr = <-controlDone
	case v4:
		cr = <-controlDone
	case !tr.ok && tr.err == nil:
		cr = cs.exchange(ctx, opts, t.addr, 60)
	}
	if err := errors.Join(tr.err, cr.err); err != nil && ctx.Err() != nil {
		return res, fmt.Errorf("doctor: ask %s: %w", t.addr, ctx.Err())
	} else if tr.err != nil {
		return res, tr.err
	}
	res.TestMACAnswered, res.ParentMACAnswered = tr.ok, cr.ok
	switch {
	case tr.ok:
		res.Verdict, res.AnsweredBy = Pass, tr.mac.String()
		res.RTTMs = float64(tr.rtt.Microseconds()) / 1000
		if v4 && l.mtu > 0 {
			fr := ts.exchange(ctx, opts, t.addr, l.mtu+14)
			if fr.err != nil {
				return res, fr.err
			}
			res.FullSizeAnswered = &fr.ok
			if !fr.ok {
				res.Verdict = MTUMismatch
			}
		}
	case cr.ok:
		res.Verdict, res.AnsweredBy = Dropped, cr.mac.String()
	default:
		res.Verdict = NoAnswer
	}
	return res, nil
}

// socket is an AF_PACKET socket bound to one side's link, for one
// protocol (ARP or IPv6).
type socket struct {
	fd    int
	side  side
	proto uint16
}

// open makes the socket inside s's namespace; it is then used from any
// thread.
func (s side) open(proto uint16) (*socket, error) {
	fd := -1
	err := inNS(s.ns, func() error {
		var err error
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, int(htons(proto)))
		if err != nil {
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(proto), Ifindex: s.ifindex}); err != nil {
			unix.Close(fd)
			return err
		}
		if proto == unix.ETH_P_IPV6 {
			// Answers to duplicate address detection go to all-nodes,
			// which a macvlan without IPv6 filters out unless asked.
			mreq := &unix.PacketMreq{Ifindex: int32(s.ifindex), Type: unix.PACKET_MR_MULTICAST, Alen: 6,
				Address: [8]byte{0x33, 0x33, 0, 0, 0, 1}}
			if err := unix.SetsockoptPacketMreq(fd, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, mreq); err != nil {
				unix.Close(fd)
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("doctor: packet socket on %q: %w", s.ifname, err)
	}
	return &socket{fd: fd, side: s, proto: proto}, nil
}

func (s *socket) close() { unix.Close(s.fd) }

// reply is the outcome of an exchange: ok with the answering MAC and the
// time to the answer, or no answer within the timeout (ok false), or err.
type reply struct {
	ok  bool
	mac net.HardwareAddr
	rtt time.Duration
	err error
}

// exchange sends opts.Probes probes for addr, evenly in the first half of
// opts.Timeout, and waits until an answer to this side's MAC comes or
// the timeout ends. size pads IPv4 probes (frame bytes without FCS).
func (s *socket) exchange(ctx context.Context, opts Options, addr netip.Addr, size int) reply {
	frame := macvlan.DADSolicitation(s.side.mac, addr)
	if addr.Is4() {
		frame = macvlan.ARPProbe(s.side.mac, addr, size)
	}
	interval := time.Duration(0)
	if opts.Probes > 1 {
		interval = opts.Timeout / time.Duration(2*(opts.Probes-1))
	}
	start := time.Now()
	deadline, next, sent := start.Add(opts.Timeout), start, 0
	buf := make([]byte, 1<<16)
	for {
		now := time.Now()
		if sent < opts.Probes && !now.Before(next) {
			if err := s.send(frame); err != nil {
				return reply{err: err}
			}
			sent++
			next = next.Add(interval)
		}
		if ctx.Err() != nil || !now.Before(deadline) {
			return reply{}
		}
		wake := deadline
		if sent < opts.Probes && next.Before(wake) {
			wake = next
		}
		// Wake at least every 50 ms to notice a cancelled context.
		wait := min(time.Until(wake), 50*time.Millisecond)
		if _, err := unix.Poll([]unix.PollFd{{Fd: int32(s.fd), Events: unix.POLLIN}}, int(wait.Milliseconds())+1); err != nil && !errors.Is(err, unix.EINTR) {
			return reply{err: fmt.Errorf("doctor: poll on %q: %w", s.side.ifname, err)}
		}
		if mac, ok, err := s.drain(buf, addr); err != nil || ok {
			return reply{ok: ok, mac: mac, rtt: time.Since(start), err: err}
		}
	}
}

// drain reads every queued frame and reports the first answer for addr.
func (s *socket) drain(buf []byte, addr netip.Addr) (net.HardwareAddr, bool, error) {
	for {
		n, from, err := unix.Recvfrom(s.fd, buf, 0)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			return nil, false, nil
		}
		if err != nil {
			return nil, false, fmt.Errorf("doctor: receive on %q: %w", s.side.ifname, err)
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		if mac, ok := s.answers(buf[:n], addr); ok {
			return mac, true, nil
		}
	}
}

// answers reports whether frame answers this side's probe for addr: an
// ARP reply from addr to this side's MAC, or a neighbour advertisement
// for addr.
func (s *socket) answers(frame []byte, addr netip.Addr) (net.HardwareAddr, bool) {
	if addr.Is4() {
		sender, mac, to, ok := macvlan.ParseARPReply(frame)
		return mac, ok && sender == addr && to.String() == s.side.mac.String()
	}
	target, mac, ok := macvlan.ParseNA(frame)
	return mac, ok && target == addr
}

func (s *socket) send(frame []byte) error {
	to := &unix.SockaddrLinklayer{Protocol: htons(s.proto), Ifindex: s.side.ifindex, Halen: 6}
	copy(to.Addr[:], frame[0:6])
	if err := unix.Sendto(s.fd, frame, 0, to); err != nil {
		return fmt.Errorf("doctor: send on %q: %w", s.side.ifname, err)
	}
	return nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
