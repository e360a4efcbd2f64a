// Package dhcptest runs real DHCP servers for tests: Debian's kea-dhcp4
// and dnsmasq, each inside a test's own network namespace on a LAN of
// nstest (never on a pre-existing interface), with their configuration,
// lease and pid files in a temporary directory of the test; and the node
// agent (medianetd) that keeps leases for the CNI plugins.
package dhcptest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/medianet/medianet/internal/nstest"
)

// Kinds of server.
const (
	Kea     = "kea"
	Dnsmasq = "dnsmasq"
)

// Kinds lists the servers every DHCP test runs against.
var Kinds = []string{Kea, Dnsmasq}

// binaries of each kind (Debian packages kea-dhcp4-server, dnsmasq).
var binaries = map[string]string{Kea: "kea-dhcp4", Dnsmasq: "dnsmasq"}

// Skip skips t when kind's server is not installed, naming the package.
func Skip(t testing.TB, kind string) {
	t.Helper()
	if _, err := exec.LookPath(binaries[kind]); err != nil {
		if _, err2 := os.Stat("/usr/sbin/" + binaries[kind]); err2 != nil {
			pkg := map[string]string{Kea: "kea-dhcp4-server", Dnsmasq: "dnsmasq"}[kind]
			t.Skipf("dhcptest: %s missing (Debian package %s; scripts/deps.sh installs it): %v", binaries[kind], pkg, err)
		}
	}
}

// Config is a server's subnet.
type Config struct {
	// Subnet, Server (the server's own address on the LAN) and Gateway
	// (option 3; invalid: none).
	Subnet  netip.Prefix
	Server  netip.Addr
	Gateway netip.Addr
	// PoolFirst, PoolLast bound the pool.
	PoolFirst, PoolLast netip.Addr
	// Lease is the lease time; T1 and T2 (0: the server's default).
	Lease, T1, T2 time.Duration
	// Routes are option 121's ("dst gw" pairs); none when empty.
	Routes [][2]string
}

// Server is one running (or stopped) DHCP server.
type Server struct {
	Kind string
	Cfg  Config
	NS   *nstest.NS
	Link string
	dir  string
	cmd  *exec.Cmd
	done chan struct{}
	t    testing.TB
}

// Start starts a server of kind in a new namespace plugged into lan,
// with cfg.Server on its link, and stops it when the test ends.
func Start(t testing.TB, kind string, lan *nstest.LAN, cfg Config) *Server {
	t.Helper()
	Skip(t, kind)
	peer := lan.AddPeer(t, netip.PrefixFrom(cfg.Server, cfg.Subnet.Bits()))
	s := &Server{Kind: kind, Cfg: cfg, NS: peer, Link: "lan0", dir: t.TempDir(), t: t}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop() })
	return s
}

// Start starts the server with its current Cfg (again, after Stop: the
// lease file is kept, as across a real restart).
func (s *Server) Start() error {
	var args []string
	var err error
	switch s.Kind {
	case Kea:
		args, err = s.keaArgs()
	case Dnsmasq:
		args, err = s.dnsmasqArgs()
	default:
		err = fmt.Errorf("dhcptest: unknown server %q", s.Kind)
	}
	if err != nil {
		return err
	}
	cmd := exec.Command("nsenter", append([]string{"--net=" + s.NS.Path, binaries[s.Kind]}, args...)...)
	cmd.Env = append(os.Environ(), "KEA_PIDFILE_DIR="+s.dir, "KEA_LOCKFILE_DIR="+s.dir, "KEA_LOGGER_DESTINATION=stdout")
	log, err := os.OpenFile(filepath.Join(s.dir, "server.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("dhcptest: start %s: %w", s.Kind, err)
	}
	s.cmd, s.done = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); log.Close(); close(s.done) }()
	return s.waitListening()
}

// waitListening waits until the server's process has bound UDP port 67
// in its namespace (or died).
func (s *Server) waitListening() error {
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			return fmt.Errorf("dhcptest: %s exited at start: %s", s.Kind, s.Log())
		default:
		}
		out, _ := s.NS.Exec("ss", "-H", "-lunp", "sport = :67")
		if bytes.Contains(out, []byte(binaries[s.Kind])) || (s.Kind == Kea && bytes.Contains(out, []byte("kea"))) {
			return nil
		}
		if s.Kind == Kea && strings.Contains(s.Log(), "DHCP4_STARTED") {
			return nil // raw sockets do not show as UDP listeners
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("dhcptest: %s not listening after 15s: %s", s.Kind, s.Log())
}

// Stop stops the server (SIGTERM, then SIGKILL) and waits for its end.
func (s *Server) Stop() error {
	if s.cmd == nil {
		return nil
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
	return nil
}

// Restart stops and starts the server, keeping its lease file.
func (s *Server) Restart() error {
	if err := s.Stop(); err != nil {
		return err
	}
	return s.Start()
}

// Log returns the server's log so far.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "server.log"))
	return string(b)
}

// Lease is one lease in the server's database.
type Lease struct {
	Address  netip.Addr
	MAC      string
	ClientID string // hex, as the server writes it (kea "00:6b:..."; dnsmasq "00:6b:...")
	Hostname string
	// Active is false for a lease the server holds as released or expired.
	Active bool
	// Expires is the lease's end as the server last wrote it.
	Expires time.Time
}

func unixTime(s string) time.Time {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.Unix(n, 0)
}

// Leases reads the server's lease database: for each address, its latest state.
func (s *Server) Leases() ([]Lease, error) {
	switch s.Kind {
	case Kea:
		return s.keaLeases()
	case Dnsmasq:
		return s.dnsmasqLeases()
	}
	return nil, errors.New("dhcptest: unknown kind")
}

// LeaseOf returns the server's latest record of addr.
func (s *Server) LeaseOf(addr netip.Addr) (Lease, bool, error) {
	ls, err := s.Leases()
	if err != nil {
		return Lease{}, false, err
	}
	for _, l := range ls {
		if l.Address == addr {
			return l, true, nil
		}
	}
	return Lease{}, false, nil
}

// WaitLease waits until pred holds for addr's record (ok false: no record).
func (s *Server) WaitLease(addr netip.Addr, d time.Duration, pred func(l Lease, ok bool) bool) error {
	deadline := time.Now().Add(d)
	for {
		l, ok, err := s.LeaseOf(addr)
		if err != nil {
			return err
		}
		if pred(l, ok) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("dhcptest: %s: lease of %s after %s: %+v (present %v)", s.Kind, addr, d, l, ok)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func secs(d time.Duration) string { return strconv.Itoa(int(d / time.Second)) }

// readLines reads path's lines (none when the file does not exist yet).
func readLines(path string) ([]string, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out, sc.Err()
}

// ClearLeases removes the lease database of a stopped server (a server
// that lost its state).
func (s *Server) ClearLeases() error {
	for _, f := range []string{"kea-leases4.csv", "kea-leases4.csv.2", "dnsmasq.leases"} {
		if err := os.Remove(filepath.Join(s.dir, f)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}
