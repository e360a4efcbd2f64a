package natprobe

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"time"

	"github.com/pion/turn/v4"
)

// relayCheck opens a peer socket, permits its public address on the relay,
// and measures round trips peer -> relay -> us -> relay -> peer; we echo
// what arrives from the peer.
func (c *TURNCheck) relayCheck(client *turn.Client, relay net.PacketConn, sn *sniffer, rep *TURNReport) {
	local, err := c.Net.SourceFor(c.Addr)
	if err != nil {
		c.fail(rep, StagePermission, TURNRelayFailed, err)
		return
	}
	peer, err := c.Net.ListenUDP(netip.AddrPortFrom(local, 0))
	if err != nil {
		c.fail(rep, StagePermission, TURNRelayFailed, fmt.Errorf("open the peer socket: %w", err))
		return
	}
	defer peer.Close()
	ips := c.peerIPs(peer, sn.state().mapped)
	t0 := time.Now()
	err = c.bounded(client, func() error {
		addrs := make([]net.Addr, len(ips))
		for i, ip := range ips {
			addrs[i] = &net.UDPAddr{IP: toIP(ip)}
		}
		return client.CreatePermission(addrs...)
	})
	if err != nil {
		st := sn.state()
		if st.errCode != 0 && st.errMethod == "CreatePermission" {
			err = errors.New(c.explainError(st.errMethod, st.errCode, st.errReason))
			c.fail(rep, StagePermission, TURNRefused, err)
			return
		}
		c.fail(rep, StagePermission, TURNRelayFailed, fmt.Errorf("create a permission for %v: %w", ips, err))
		return
	}
	permRTT := time.Since(t0)
	rep.PermissionMs = msSince(t0)
	go echo(relay)
	rep.Peer = "udp"
	var first time.Duration // over UDP the host's socket is the only peer: wait the timeout
	if c.server.Transport != TransportUDP {
		first = c.firstEchoWait(permRTT)
	}
	rtts, err := c.ping(udpPeer{peer}, relay.LocalAddr(), first)
	if err != nil && c.server.Transport != TransportUDP {
		// UDP from here may be blocked while TCP or TLS passes: a second
		// allocation, reached over the same transport, is the peer.
		rep.Peer = "relay"
		var err2 error
		if rtts, err2 = c.pingViaRelay(client, relay); err2 != nil {
			err = fmt.Errorf("%w; from a second allocation as the peer: %w", err, err2)
		} else {
			err = nil
		}
	}
	if err != nil {
		c.fail(rep, StageRelay, TURNRelayFailed, err)
		return
	}
	sort.Slice(rtts, func(i, j int) bool { return rtts[i] < rtts[j] })
	rep.RelayRTTMs = float64(rtts[len(rtts)/2].Microseconds()) / 1000
	rep.Verdict = TURNOK
}

// peerIPs are the addresses the peer socket's packets may come from: our
// address as the server saw it, and over UDP the peer's own mapping.
func (c *TURNCheck) peerIPs(peer *net.UDPConn, mapped netip.AddrPort) []netip.Addr {
	var ips []netip.Addr
	if mapped.IsValid() {
		ips = append(ips, mapped.Addr())
	}
	if c.server.Transport == TransportUDP {
		x := exchange{b: backoff{rto: 100 * time.Millisecond, max: 300 * time.Millisecond}, end: time.Now().Add(min(c.Timeout, time.Second))}
		if r, err := x.do(peer, c.Addr); err == nil && r.addrs.reflexive().IsValid() && (len(ips) == 0 || r.addrs.reflexive().Addr() != ips[0]) {
			ips = append(ips, r.addrs.reflexive().Addr())
		}
	}
	if len(ips) == 0 {
		ips = append(ips, netip.MustParseAddrPort(peer.LocalAddr().String()).Addr())
	}
	return ips
}

// echo sends back through the relay whatever arrives on it, until it is
// closed.
func echo(relay net.PacketConn) {
	buf := make([]byte, 1500)
	for {
		n, from, err := relay.ReadFrom(buf)
		if err != nil {
			return
		}
		relay.WriteTo(buf[:n], from)
	}
}

// pinger is the peer end of the round trips.
type pinger interface {
	send(b []byte, to net.Addr) error
	recv(b []byte, deadline time.Time) (int, error)
}

// udpPeer is a UDP socket here as the peer.
type udpPeer struct{ c *net.UDPConn }

func (p udpPeer) send(b []byte, to net.Addr) error {
	ap, err := netip.ParseAddrPort(to.String())
	if err == nil {
		_, err = p.c.WriteToUDPAddrPort(b, ap)
	}
	return err
}

func (p udpPeer) recv(b []byte, deadline time.Time) (int, error) {
	n, _, err := readUntil(p.c, b, deadline)
	return n, err
}

// relayPeer is a second allocation as the peer.
type relayPeer struct{ c net.PacketConn }

func (p relayPeer) send(b []byte, to net.Addr) error { _, err := p.c.WriteTo(b, to); return err }

func (p relayPeer) recv(b []byte, deadline time.Time) (int, error) {
	p.c.SetReadDeadline(deadline)
	n, _, err := p.c.ReadFrom(b)
	return n, err
}

// pingViaRelay allocates a second relay over a second connection and pings
// the first relay from it.
func (c *TURNCheck) pingViaRelay(client *turn.Client, relay net.PacketConn) ([]time.Duration, error) {
	conn, err := c.connect(c.Addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	client2, err := turn.NewClient(&turn.ClientConfig{TURNServerAddr: c.Addr.String(), Username: c.username, Password: c.Password,
		Conn: conn, LoggerFactory: quietLogs(), RTO: 100 * time.Millisecond, Software: "natprobe"})
	if err != nil {
		return nil, err
	}
	defer client2.Close()
	if err := client2.Listen(); err != nil {
		return nil, err
	}
	var relay2 net.PacketConn
	if err := c.bounded(client2, func() (err error) { relay2, err = client2.Allocate(); return err }); err != nil {
		return nil, fmt.Errorf("second allocation: %w", err)
	}
	defer relay2.Close()
	r2 := relay2.LocalAddr().(*net.UDPAddr)
	if err := c.bounded(client, func() error { return client.CreatePermission(&net.UDPAddr{IP: r2.IP}) }); err != nil {
		return nil, fmt.Errorf("permission for the second allocation %v: %w", r2, err)
	}
	return c.ping(relayPeer{relay2}, relay.LocalAddr(), 0)
}

// firstEchoWait bounds how long a UDP socket of this host, as the peer of
// a TCP or TLS allocation, waits for its first echo before the check
// falls back to a second allocation as the peer: from a host whose UDP is
// blocked no echo ever comes, and waiting the whole timeout would make
// that check, exactly the one such a host needs, the slowest. Eight round
// trips over the allocation's connection as CreatePermission measured
// (a UDP round trip through the relay takes about two), at least 200 ms,
// at most the timeout.
func (c *TURNCheck) firstEchoWait(rtt time.Duration) time.Duration {
	return min(max(8*rtt, 200*time.Millisecond), c.Timeout)
}

// ping sends numbered packets from the peer to the relay until relayPings
// have come back, retransmitting every 100 ms (or every quarter of first,
// when shorter), within the timeout. With first > 0, no echo within first
// ends it early.
func (c *TURNCheck) ping(peer pinger, relayed net.Addr, first time.Duration) ([]time.Duration, error) {
	start := time.Now()
	end := start.Add(c.Timeout)
	rto := 100 * time.Millisecond
	if first > 0 {
		end = minTime(start.Add(first), end)
		rto = min(rto, max(first/4, 10*time.Millisecond))
	}
	var rtts []time.Duration
	buf := make([]byte, 1500)
	for seq := uint32(0); len(rtts) < relayPings; seq++ {
		if !time.Now().Before(end) {
			return nil, fmt.Errorf("data sent from a peer here to the relay %v came back %d times out of %d within %v: the relay's ports (coturn min-port..max-port) may be filtered, or the server cannot reach this peer", relayed, len(rtts), seq, end.Sub(start).Round(time.Millisecond))
		}
		if len(rtts) == 1 && first > 0 {
			// The path works: the rest of the round trips get the timeout.
			end, rto = start.Add(c.Timeout), 100*time.Millisecond
		}
		msg := binary.BigEndian.AppendUint32([]byte("natprobe relay check "), seq)
		sent := time.Now()
		if err := peer.send(msg, relayed); err != nil {
			return nil, fmt.Errorf("send to the relay %v: %w", relayed, err)
		}
		for {
			n, err := peer.recv(buf, minTime(sent.Add(rto), end))
			if err != nil {
				break
			}
			if n >= 0 && bytes.Equal(buf[:n], msg) {
				rtts = append(rtts, time.Since(sent))
				break
			}
		}
	}
	return rtts, nil
}
