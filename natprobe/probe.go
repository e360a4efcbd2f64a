package natprobe

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Network opens the prober's sockets. HostNetwork uses the calling
// process's namespace; NetnsNetwork opens them inside another one.
type Network interface {
	// ListenUDP opens an unconnected UDP socket on laddr.
	ListenUDP(laddr netip.AddrPort) (*net.UDPConn, error)
	// SourceFor returns the local IP the routes pick to reach dst.
	SourceFor(dst netip.AddrPort) (netip.Addr, error)
}

// HostNetwork is the Network of the calling process.
type HostNetwork struct{}

// ListenUDP implements Network.
func (HostNetwork) ListenUDP(laddr netip.AddrPort) (*net.UDPConn, error) {
	return net.ListenUDP("udp", net.UDPAddrFromAddrPort(laddr))
}

// SourceFor implements Network with a connected UDP socket, which sends
// nothing.
func (HostNetwork) SourceFor(dst netip.AddrPort) (netip.Addr, error) {
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(dst))
	if err != nil {
		return netip.Addr{}, fmt.Errorf("natprobe: route to %v: %w", dst, err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap(), nil
}

// Prober runs the RFC 5780 tests. The zero value needs only Servers.
//
// Timing: the first request (the basic binding) retransmits from RTO,
// doubling to MaxRTO. Every later test sizes its waits from the round-trip
// time measured on the replies so far: retransmissions from twice the RTT,
// and a test whose answer may rightly be silence sends silentSends
// requests half an RTT apart, waits one more RTT, and counts the silence
// only when a control binding on the same socket then answers first.
type Prober struct {
	// Servers are the STUN servers; the first that answers is the primary.
	Servers []netip.AddrPort
	// LocalPort is the port of the first socket (the basic and mapping
	// tests); 0 picks one. Use the port the media server will use.
	LocalPort uint16
	// Timeout bounds the whole probe; default 5s.
	Timeout time.Duration
	// RTO is the first retransmission interval before any round trip was
	// measured, doubling to MaxRTO; defaults 100ms and 300ms.
	RTO, MaxRTO time.Duration
	// Lifetime, when set, runs the binding lifetime test up to this long
	// (RFC 5780 section 4.6); the probe then takes that much longer.
	Lifetime time.Duration
	// Net opens sockets; default HostNetwork.
	Net Network
	// Now is the clock for DurationMs; default time.Now.
	Now func() time.Time
}

// run is the state of one probe.
type run struct {
	p       *Prober
	end     time.Time
	local   netip.Addr
	primary netip.AddrPort
	other   netip.AddrPort // OTHER-ADDRESS, invalid without RFC 5780
	rtt     rttEstimator
	mu      sync.Mutex // guards notes
	notes   []string
}

func (r *run) note(format string, args ...any) {
	r.mu.Lock()
	r.notes = append(r.notes, fmt.Sprintf(format, args...))
	r.mu.Unlock()
}

func (p *Prober) defaults() {
	if p.Timeout <= 0 {
		p.Timeout = 5 * time.Second
	}
	if p.RTO <= 0 {
		p.RTO = 100 * time.Millisecond
	}
	if p.MaxRTO < p.RTO {
		p.MaxRTO = max(3*p.RTO, 300*time.Millisecond)
	}
	if p.Net == nil {
		p.Net = HostNetwork{}
	}
	if p.Now == nil {
		p.Now = time.Now
	}
}

func (p *Prober) backoff() backoff { return backoff{rto: p.RTO, max: p.MaxRTO} }

// Probe runs every test and returns the report. An error means the probe
// could not run (bad input, no socket); an unanswered server is a result.
func (p *Prober) Probe(ctx context.Context) (*Report, error) {
	p.defaults()
	if len(p.Servers) == 0 {
		return nil, ErrNoServer
	}
	for _, s := range p.Servers[1:] {
		if s.Addr().Unmap().Is4() != p.Servers[0].Addr().Unmap().Is4() {
			return nil, fmt.Errorf("natprobe: servers %v and %v: %w", p.Servers[0], s, ErrFamilyMismatch)
		}
	}
	start := p.Now()
	r := &run{p: p, end: time.Now().Add(p.Timeout + p.Lifetime)}
	if d, ok := ctx.Deadline(); ok && d.Before(r.end) {
		r.end = d
	}
	local, err := p.Net.SourceFor(p.Servers[0])
	if err != nil {
		return nil, err
	}
	r.local = local
	rep, err := r.probe()
	if err != nil {
		return nil, err
	}
	rep.DurationMs = p.Now().Sub(start).Milliseconds()
	return rep, nil
}

func (r *run) listen(port uint16) (*net.UDPConn, error) {
	c, err := r.p.Net.ListenUDP(netip.AddrPortFrom(r.local, port))
	if err != nil {
		return nil, fmt.Errorf("natprobe: open socket on %v port %d: %w", r.local, port, err)
	}
	return c, nil
}

func (r *run) probe() (*Report, error) {
	s0, err := r.listen(r.p.LocalPort)
	if err != nil {
		return nil, err
	}
	defer s0.Close()
	rep := &Report{Local: s0.LocalAddr().(*net.UDPAddr).AddrPort().String()}
	localAP := netip.MustParseAddrPort(rep.Local)
	basic, ok := r.basic(s0)
	if !ok {
		rep.Server = r.p.Servers[0].String()
		blocked(rep)
		rep.Notes = r.notes
		return rep, nil
	}
	mapped := basic.addrs.reflexive()
	rep.Server, rep.Mapped = r.primary.String(), mapped.String()
	rep.NATPresent = mapped != localAP
	rep.PortPreserved = mapped.Port() == localAP.Port()
	rep.ALG = basic.addrs.xorMapped.IsValid() && basic.addrs.mapped.IsValid() && basic.addrs.xorMapped != basic.addrs.mapped
	if o := basic.addrs.other; o.IsValid() && o.Addr() != r.primary.Addr() && o.Port() != r.primary.Port() && basic.addrs.origin.IsValid() {
		r.other = o
		rep.RFC5780 = true
		rep.OtherAddress = o.String()
	}

	var wg sync.WaitGroup
	var filt string
	var in inbound
	var hair *bool
	if r.p.Lifetime > 0 {
		wg.Add(1)
		go func() { defer wg.Done(); rep.BindingLifetimeAtLeastMs, rep.BindingLifetimeAtMostMs = r.lifetime() }()
	}
	wg.Add(4)
	go func() { defer wg.Done(); filt = r.filtering() }()
	go func() { defer wg.Done(); in = r.inboundFirst() }()
	go func() { defer wg.Done(); hair = r.hairpin() }()
	go func() { defer wg.Done(); r.mapping(s0, mapped, rep) }()
	wg.Wait()

	rep.Filtering = filt
	rep.Hairpinning = hair
	rep.UnsolicitedInboundRemaps = remaps(rep, in)
	decide(rep)
	rep.Notes = r.notes
	if rtt, ok := r.rtt.get(); ok {
		rep.RTTMs = float64(rtt.Microseconds()) / 1000
	}
	return rep, nil
}

// basic is RFC 5780 test I: a plain Binding to each server in turn from
// s0 until one answers correctly; that one becomes the primary. Each
// server but the last gets an equal share of the time left, so a dead
// first server does not use up the whole timeout.
func (r *run) basic(s0 *net.UDPConn) (reply, bool) {
	for i, srv := range r.p.Servers {
		x := r.exchange(nil)
		if left := len(r.p.Servers) - i; left > 1 {
			x.end = time.Now().Add(time.Until(r.end) / time.Duration(left))
		}
		rp, err := x.do(s0, srv)
		if err == nil {
			err = checkSource(rp, srv)
		}
		if err != nil {
			r.note("basic binding to %v: %v", srv, err)
			continue
		}
		r.primary = srv
		return rp, true
	}
	return reply{}, false
}

// remaps reads the inbound-first test: on an endpoint-independent mapping,
// a new public port towards a peer whose packet arrived first is a remap.
func remaps(rep *Report, in inbound) *bool {
	switch {
	case !rep.NATPresent && in.before.IsValid():
		return boolp(false)
	case rep.Mapping != EndpointIndependent || !in.before.IsValid() || !in.after.IsValid():
		return nil
	}
	return boolp(in.after != in.before)
}
