// Package coturntest runs coturn's turnserver inside a namespace of the
// test's own (a natlab world's server namespace, say): as an RFC 5780
// STUN-only server on two addresses, or as a TURN server with long-term
// credentials or a TURN REST API shared secret, over UDP, TCP and TLS
// (with a self-signed certificate it writes), killed when the test ends.
package coturntest

import (
	"fmt"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/medianet/medianet/internal/natlab"
)

// Options choose what the server does.
type Options struct {
	// IPs are the listening (and relay) addresses; two make coturn an
	// RFC 5780 server (alternate port = Port + 1).
	IPs []netip.Addr
	// Port is the UDP and TCP listening port; default 3478.
	Port int
	// STUNOnly serves STUN Binding only, without authentication.
	STUNOnly bool
	// Users are long-term credentials (lt-cred-mech), user to password.
	Users map[string]string
	// Secret turns on the TURN REST API (use-auth-secret) with this
	// static-auth-secret.
	Secret string
	// TLS listens on TLSPort (default 5349) with a self-signed
	// certificate for IPs[0], written to Server.CAFile.
	TLS     bool
	TLSPort int
	// NoUDP and NoTCP turn off the client listeners of that transport.
	NoUDP, NoTCP bool
}

// Realm is the realm of every TURN server started here.
const Realm = "medianet.test"

// Server is a running turnserver.
type Server struct {
	Options
	Dir    string // pid, log, user database, certificate
	CAFile string // the self-signed certificate, with TLS
	proc   *natlab.Process
}

// Require skips t unless coturn's turnserver is installed.
func Require(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("turnserver"); err != nil {
		t.Skip("coturntest: coturn's turnserver not installed (Debian package coturn)")
	}
}

// Start runs turnserver in namespace ns and waits for its sockets.
func Start(t testing.TB, ns string, o Options) *Server {
	t.Helper()
	Require(t)
	if len(o.IPs) == 0 {
		t.Fatal("coturntest: no listening IP")
	}
	if o.Port == 0 {
		o.Port = 3478
	}
	if o.TLSPort == 0 {
		o.TLSPort = 5349
	}
	s := &Server{Options: o, Dir: t.TempDir()}
	args, ready, err := s.args()
	if err != nil {
		t.Fatal(err)
	}
	s.proc = natlab.Start(t, ns, ready, append([]string{"turnserver"}, args...)...)
	return s
}

// Addr is the server's first address and port.
func (s *Server) Addr() netip.AddrPort { return netip.AddrPortFrom(s.IPs[0], uint16(s.Port)) }

// Log returns the server's log so far.
func (s *Server) Log() string {
	out, _ := exec.Command("cat", filepath.Join(s.Dir, "turn.log")).Output()
	return string(out)
}

func (s *Server) args() (args, ready []string, err error) {
	args = []string{"-n", "--no-cli", "--no-dtls", "--simple-log",
		"--pidfile=" + filepath.Join(s.Dir, "turnserver.pid"),
		"--log-file=" + filepath.Join(s.Dir, "turn.log"),
		"--userdb=" + filepath.Join(s.Dir, "turndb"),
		"--listening-port=" + strconv.Itoa(s.Port),
		"--min-port=49152", "--max-port=65535"}
	for _, ip := range s.IPs {
		args = append(args, "--listening-ip="+ip.String())
	}
	port := func(ip netip.Addr, p int) string { return netip.AddrPortFrom(ip, uint16(p)).String() }
	if !s.NoUDP || s.STUNOnly {
		ready = append(ready, port(s.IPs[0], s.Port))
	}
	if len(s.IPs) > 1 {
		ready = append(ready, port(s.IPs[1], s.Port+1))
	}
	switch {
	case s.STUNOnly:
		args = append(args, "--stun-only", "--no-auth")
	case s.Secret != "":
		args = append(args, "--use-auth-secret", "--static-auth-secret="+s.Secret, "--realm="+Realm)
	default:
		args = append(args, "--lt-cred-mech", "--realm="+Realm)
		for u, p := range s.Users {
			args = append(args, "--user="+u+":"+p)
		}
	}
	if s.NoUDP {
		args = append(args, "--no-udp")
	}
	if s.NoTCP {
		args = append(args, "--no-tcp")
	}
	if !s.TLS {
		return append(args, "--no-tls"), ready, nil
	}
	cert, key := filepath.Join(s.Dir, "cert.pem"), filepath.Join(s.Dir, "key.pem")
	if err := SelfSigned(cert, key, s.IPs[0]); err != nil {
		return nil, nil, fmt.Errorf("coturntest: certificate: %w", err)
	}
	s.CAFile = cert
	args = append(args, "--cert="+cert, "--pkey="+key, "--tls-listening-port="+strconv.Itoa(s.TLSPort))
	return args, append(ready, port(s.IPs[0], s.TLSPort)), nil
}
