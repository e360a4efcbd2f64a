package natprobe

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/pion/stun/v3"
	"github.com/pion/turn/v4"
)

// TURNNetwork opens the TURN check's sockets: UDP ones as the prober
// does, and connected UDP or TCP ones to the server.
type TURNNetwork interface {
	Network
	// Dial connects to raddr over "udp" or "tcp" within timeout.
	Dial(network string, raddr netip.AddrPort, timeout time.Duration) (net.Conn, error)
}

// Dial implements TURNNetwork.
func (HostNetwork) Dial(network string, raddr netip.AddrPort, timeout time.Duration) (net.Conn, error) {
	return net.DialTimeout(network, raddr.String(), timeout)
}

// Dial implements TURNNetwork inside the namespace.
func (n *NetnsNetwork) Dial(network string, raddr netip.AddrPort, timeout time.Duration) (c net.Conn, err error) {
	n.do(func() { c, err = HostNetwork{}.Dial(network, raddr, timeout) })
	return c, err
}

// serverConn is a connected UDP socket as the net.PacketConn pion/turn
// wants: every packet goes to, and comes from, the server. Connected, it
// reports the server's ICMP port unreachable as a read error.
type serverConn struct {
	net.Conn
}

func (c serverConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, err := c.Read(b)
	return n, c.RemoteAddr(), err
}

func (c serverConn) WriteTo(b []byte, _ net.Addr) (int, error) { return c.Write(b) }

// sniffed is what the sniffer saw.
type sniffed struct {
	answered     bool // some STUN response arrived
	lifetime     time.Duration
	mapped       netip.AddrPort
	realm        string
	errCode      int    // last error response
	errMethod    string // its method
	errReason    string
	unauthorized int // 401 responses (the first is the challenge)
	readErr      error
}

// sniffer watches the STUN responses pion/turn reads, for what its API
// does not return: the LIFETIME, the mapped address, the realm, the last
// error response, and read errors such as a refused connection.
type sniffer struct {
	net.PacketConn
	mu sync.Mutex // guards st
	st sniffed
}

func (s *sniffer) ReadFrom(b []byte) (int, net.Addr, error) {
	n, from, err := s.PacketConn.ReadFrom(b)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.st.readErr = err
		return n, from, err
	}
	if m, ok := decode(b[:n]); ok {
		s.record(m)
	}
	return n, from, nil
}

func (s *sniffer) record(m *stun.Message) {
	switch m.Type.Class {
	case stun.ClassErrorResponse:
		s.st.answered = true
		var ec stun.ErrorCodeAttribute
		_ = ec.GetFrom(m)
		s.st.errCode, s.st.errMethod, s.st.errReason = int(ec.Code), m.Type.Method.String(), string(ec.Reason)
		if ec.Code == stun.CodeUnauthorized {
			s.st.unauthorized++
		}
		var realm stun.Realm
		if realm.GetFrom(m) == nil {
			s.st.realm = realm.String()
		}
	case stun.ClassSuccessResponse:
		s.st.answered = true
		if m.Type.Method != stun.MethodAllocate {
			return
		}
		if v, err := m.Get(stun.AttrLifetime); err == nil && len(v) == 4 {
			s.st.lifetime = time.Duration(binary.BigEndian.Uint32(v)) * time.Second
		}
		var x stun.XORMappedAddress
		if x.GetFrom(m) == nil {
			s.st.mapped, _ = fromIPPort(x.IP, x.Port)
		}
	}
}

// state returns a copy of what the sniffer saw.
func (s *sniffer) state() sniffed {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st
}

// connect opens the transport to the server: a connected UDP socket, a
// TCP connection, or TLS over TCP. On failure it returns what to fix.
func (c *TURNCheck) connect(server netip.AddrPort) (net.PacketConn, error) {
	switch c.server.Transport {
	case TransportUDP:
		conn, err := c.Net.Dial("udp", server, c.Timeout)
		if err != nil {
			return nil, fmt.Errorf("open a UDP socket to %v: %w", server, err)
		}
		return serverConn{conn}, nil
	case TransportTCP:
		conn, err := c.Net.Dial("tcp", server, c.Timeout)
		if err != nil {
			return nil, c.explainDial(server, err)
		}
		return turn.NewSTUNConn(conn), nil
	}
	conn, err := c.Net.Dial("tcp", server, c.Timeout)
	if err != nil {
		return nil, c.explainDial(server, err)
	}
	cfg := &tls.Config{ServerName: c.server.Host, MinVersion: tls.VersionTLS12, RootCAs: c.roots}
	tc := tls.Client(conn, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), c.Timeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		conn.Close()
		return nil, explainTLS(server, c.server.Host, err)
	}
	return turn.NewSTUNConn(tc), nil
}

// loadCA reads the --ca file into a pool.
func loadCA(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("natprobe: --ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("natprobe: --ca %q: no PEM certificate in it", file)
	}
	return pool, nil
}

// explainDial says what to fix when a TCP connection to the server fails.
func (c *TURNCheck) explainDial(server netip.AddrPort, err error) error {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("connection to %v refused: nothing accepts TCP there (the server does not listen for %s on that port, e.g. coturn no-tcp or no-tls, or a firewall rejects it): check the port or try another transport: %w",
			server, c.server.Transport, err)
	case errors.Is(err, os.ErrDeadlineExceeded) || isTimeout(err):
		return fmt.Errorf("no answer from %v over TCP within %v: check the address, that the server runs, and that TCP egress to it is open: %w", server, c.Timeout, err)
	}
	return fmt.Errorf("connect to %v over TCP: %w", server, err)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// explainTLS says what to fix when the TLS handshake fails.
func explainTLS(server netip.AddrPort, host string, err error) error {
	var unknown x509.UnknownAuthorityError
	var name x509.HostnameError
	var invalid x509.CertificateInvalidError
	switch {
	case errors.As(err, &unknown):
		return fmt.Errorf("TLS to %v: the server's certificate is not signed by a trusted authority: pass --ca FILE with the server's certificate (self-signed) or its CA: %w", server, err)
	case errors.As(err, &name):
		return fmt.Errorf("TLS to %v: the certificate is not valid for %q: put a name or address the certificate names in --server: %w", server, host, err)
	case errors.As(err, &invalid):
		return fmt.Errorf("TLS to %v: the certificate is not valid now (expired, or not yet valid): renew it on the server: %w", server, err)
	case isTimeout(err):
		return fmt.Errorf("TLS to %v: no handshake within the timeout: is it a TLS port (coturn tls-listening-port, default 5349)?: %w", server, err)
	}
	return fmt.Errorf("TLS to %v: handshake failed (is it a TLS port?): %w", server, err)
}
