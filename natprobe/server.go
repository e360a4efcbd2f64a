package natprobe

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/pion/stun/v3"
)

// ServerConfig configures an RFC 5780 server.
type ServerConfig struct {
	// Primary is the first IP and port. Required, with a specific IP (the
	// server reports it in RESPONSE-ORIGIN).
	Primary netip.AddrPort
	// Alternate is the second IP and port. When it is the zero value the
	// server has one address and follows RFC 5780 section 6: no
	// OTHER-ADDRESS and error 420 to CHANGE-REQUEST.
	Alternate netip.AddrPort
	// Rate is the number of requests per second one source IP may send;
	// Burst is how many it may send at once. Defaults 50 and 100.
	Rate  float64
	Burst int
	// Now is the clock for the rate limiter; default time.Now.
	Now func() time.Time
	// Logf, when set, receives one line per dropped or refused request.
	Logf func(format string, args ...any)
}

// Server answers STUN Binding requests on up to four sockets: index bit 0
// selects the alternate port, bit 1 the alternate IP.
type Server struct {
	cfg   ServerConfig
	addrs [4]netip.AddrPort
	n     int // number of sockets: 1 or 4
	lim   *limiter

	mu    sync.Mutex // guards conns and closed
	conns [4]*net.UDPConn
	wg    sync.WaitGroup
}

// NewServer checks cfg and returns a server that has not yet opened sockets.
func NewServer(cfg ServerConfig) (*Server, error) {
	if !cfg.Primary.IsValid() || cfg.Primary.Addr().IsUnspecified() || cfg.Primary.Port() == 0 {
		return nil, fmt.Errorf("natprobe: server primary %v: want a specific IP and a non-zero port", cfg.Primary)
	}
	s := &Server{cfg: cfg, n: 1}
	p := netip.AddrPortFrom(cfg.Primary.Addr().Unmap(), cfg.Primary.Port())
	s.addrs[0] = p
	if cfg.Alternate.IsValid() {
		a := netip.AddrPortFrom(cfg.Alternate.Addr().Unmap(), cfg.Alternate.Port())
		switch {
		case a.Addr().IsUnspecified() || a.Port() == 0:
			return nil, fmt.Errorf("natprobe: server alternate %v: want a specific IP and a non-zero port", a)
		case a.Addr() == p.Addr() || a.Port() == p.Port():
			return nil, fmt.Errorf("natprobe: server alternate %v: IP and port must both differ from primary %v", a, p)
		case a.Addr().Is4() != p.Addr().Is4():
			return nil, fmt.Errorf("natprobe: server alternate %v: family differs from primary %v", a, p)
		}
		s.n = 4
		s.addrs[1] = netip.AddrPortFrom(p.Addr(), a.Port())
		s.addrs[2] = netip.AddrPortFrom(a.Addr(), p.Port())
		s.addrs[3] = a
	}
	if s.cfg.Rate <= 0 {
		s.cfg.Rate = 50
	}
	if s.cfg.Burst <= 0 {
		s.cfg.Burst = 100
	}
	if s.cfg.Now == nil {
		s.cfg.Now = time.Now
	}
	s.lim = newLimiter(s.cfg.Rate, s.cfg.Burst, s.cfg.Now)
	return s, nil
}

// Addrs returns the addresses the server answers on, primary first.
func (s *Server) Addrs() []netip.AddrPort { return append([]netip.AddrPort(nil), s.addrs[:s.n]...) }

// Start opens the sockets and answers requests until Close.
func (s *Server) Start() (retErr error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer func() {
		if retErr != nil {
			s.closeLocked()
		}
	}()
	for i := 0; i < s.n; i++ {
		c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(s.addrs[i]))
		if err != nil {
			return fmt.Errorf("natprobe: server listen %v: %w", s.addrs[i], err)
		}
		s.conns[i] = c
	}
	for i := 0; i < s.n; i++ {
		s.wg.Add(1)
		go s.loop(i, s.conns[i])
	}
	return nil
}

// Close closes the sockets and waits for the loops to end.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closeLocked()
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

func (s *Server) closeLocked() {
	for i, c := range s.conns {
		if c != nil {
			c.Close()
			s.conns[i] = nil
		}
	}
}

func (s *Server) loop(idx int, c *net.UDPConn) {
	defer s.wg.Done()
	buf := make([]byte, 1500)
	for {
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		if !s.lim.allow(from.Addr()) {
			s.logf("natprobe: drop request from %v: %v", from, ErrRateLimited)
			continue
		}
		out, outIdx, to, err := s.Handle(buf[:n], from, idx)
		if err != nil {
			s.logf("natprobe: request from %v on %v: %v", from, s.addrs[idx], err)
		}
		if out == nil {
			continue
		}
		s.mu.Lock()
		oc := s.conns[outIdx]
		s.mu.Unlock()
		if oc != nil {
			oc.WriteToUDPAddrPort(out, to)
		}
	}
}

func (s *Server) logf(format string, args ...any) {
	if s.cfg.Logf != nil {
		s.cfg.Logf(format, args...)
	}
}

// knownRequired lists the comprehension-required attributes the server
// understands or may safely ignore; any other one gets error 420.
var knownRequired = map[stun.AttrType]bool{
	stun.AttrChangeRequest: true, stun.AttrResponsePort: true, stun.AttrPadding: true,
	stun.AttrUsername: true, stun.AttrMessageIntegrity: true, stun.AttrPriority: true,
	stun.AttrUseCandidate: true,
}

// Handle answers one packet received from src on socket local. It returns
// the reply, the socket to send it from and its destination; a nil reply
// means the packet is dropped (err says why, when it is worth saying). It
// owns no socket and never sends anywhere but src's IP.
func (s *Server) Handle(pkt []byte, src netip.AddrPort, local int) (reply []byte, outIdx int, to netip.AddrPort, err error) {
	if local < 0 || local >= s.n {
		return nil, 0, to, fmt.Errorf("natprobe: server socket %d out of range", local)
	}
	if !stun.IsMessage(pkt) {
		return nil, 0, to, ErrNotRequest
	}
	req := new(stun.Message)
	if err := stun.Decode(pkt, req); err != nil {
		return nil, 0, to, fmt.Errorf("natprobe: decode request: %w", err)
	}
	if req.Type != stun.BindingRequest {
		return nil, 0, to, ErrNotRequest
	}
	if req.Contains(stun.AttrFingerprint) {
		if err := stun.Fingerprint.Check(req); err != nil {
			return nil, 0, to, fmt.Errorf("natprobe: request fingerprint: %w", err)
		}
	}
	var unknown stun.UnknownAttributes
	for _, a := range req.Attributes {
		if a.Type.Required() && !knownRequired[a.Type] {
			unknown = append(unknown, a.Type)
		}
	}
	cr, hasCR, crErr := getChangeRequest(req)
	rp, hasRP, rpErr := getResponsePort(req)
	switch {
	case crErr != nil || rpErr != nil || (hasRP && rp == 0):
		return s.errorReply(req, stun.CodeBadRequest, nil, src, local)
	case len(unknown) > 0:
		return s.errorReply(req, stun.CodeUnknownAttribute, unknown, src, local)
	case hasCR && s.n == 1 && (cr.ip || cr.port):
		return s.errorReply(req, stun.CodeUnknownAttribute, stun.UnknownAttributes{stun.AttrChangeRequest}, src, local)
	}
	outIdx = local
	if cr.ip {
		outIdx ^= 2
	}
	if cr.port {
		outIdx ^= 1
	}
	to = src
	if hasRP {
		to = netip.AddrPortFrom(src.Addr(), rp)
	}
	reply, err = s.successReply(req, src, outIdx, local)
	return reply, outIdx, to, err
}

func (s *Server) successReply(req *stun.Message, src netip.AddrPort, outIdx, local int) ([]byte, error) {
	ip := toIP(src.Addr())
	origin := s.addrs[outIdx]
	setters := []stun.Setter{
		stun.NewTransactionIDSetter(req.TransactionID), stun.BindingSuccess,
		&stun.XORMappedAddress{IP: ip, Port: int(src.Port())},
		&stun.MappedAddress{IP: ip, Port: int(src.Port())},
		&stun.ResponseOrigin{IP: toIP(origin.Addr()), Port: int(origin.Port())},
	}
	if s.n == 4 {
		other := s.addrs[local^3]
		setters = append(setters, &stun.OtherAddress{IP: toIP(other.Addr()), Port: int(other.Port())})
	}
	setters = withFingerprint(req, setters)
	m, err := stun.Build(setters...)
	if err != nil {
		return nil, fmt.Errorf("natprobe: build binding success: %w", err)
	}
	return m.Raw, nil
}

func (s *Server) errorReply(req *stun.Message, code stun.ErrorCode, unknown stun.UnknownAttributes, src netip.AddrPort, local int) ([]byte, int, netip.AddrPort, error) {
	setters := []stun.Setter{stun.NewTransactionIDSetter(req.TransactionID), stun.BindingError, code}
	if len(unknown) > 0 {
		setters = append(setters, unknown)
	}
	setters = withFingerprint(req, setters)
	m, err := stun.Build(setters...)
	if err != nil {
		return nil, 0, src, fmt.Errorf("natprobe: build binding error %d: %w", code, err)
	}
	return m.Raw, local, src, nil
}

// withFingerprint adds FINGERPRINT to a reply when the request carried
// one: a request without it gets none, which keeps a minimal request's
// reply (and a reflection attack's gain) smaller.
func withFingerprint(req *stun.Message, setters []stun.Setter) []stun.Setter {
	if req.Contains(stun.AttrFingerprint) {
		return append(setters, stun.Fingerprint)
	}
	return setters
}
