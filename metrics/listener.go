package metrics

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/medianet/medianet/metrics/report"
	"golang.org/x/sys/unix"
)

// Limits of the report listener.
const (
	// reportReadTimeout bounds the wait for one connection's report: a
	// plugin writes it before it closes, so only a stuck sender waits.
	reportReadTimeout = 2 * time.Second
	// reportWorkers is how many connections are read at once.
	reportWorkers = 8
)

// Reasons a well-formed report is refused (label reason of ReportsRefused).
const (
	RefusedSender    = "sender"     // SO_PEERCRED: neither root nor the agent's user
	RefusedBounds    = "bounds"     // a value no plugin sends (report.Check)
	RefusedQueueFull = "queue_full" // the plugins' count of reports the full backlog refused
)

// listenReports binds the report socket of dataDir (creating the
// directory 0700 when missing), a unix stream socket of mode 0600 with a
// listen backlog of backlog (report.Backlog; the kernel caps it at
// net.core.somaxconn), and creates the empty lost-report counter
// (report.LostPath). A socket file left by an agent that died is
// replaced; one another agent still listens on is an error.
func listenReports(dataDir string, backlog int) (*net.UnixListener, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("metrics: data directory %q: %w", dataDir, err)
	}
	path := report.SocketPath(dataDir)
	if err := removeStale(path); err != nil {
		return nil, err
	}
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("metrics: report socket: %w", err)
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close() // FileListener dups it
	// The mode is set before listen: no sender connects before it is 0600.
	if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: path}); err != nil {
		return nil, fmt.Errorf("metrics: bind %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("metrics: chmod %s: %w", path, err)
	}
	if err := syscall.Listen(fd, backlog); err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("metrics: listen on %s: %w", path, err)
	}
	l, err := net.FileListener(f)
	if err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("metrics: listen on %s: %w", path, err)
	}
	ul := l.(*net.UnixListener)
	ul.SetUnlinkOnClose(false) // Close removes it, after the last read
	lost, err := os.OpenFile(report.LostPath(dataDir), os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		ul.Close()
		os.Remove(path)
		return nil, fmt.Errorf("metrics: lost-report counter: %w", err)
	}
	lost.Close()
	return ul, nil
}

// removeStale removes path if it is a socket nobody listens on.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("metrics: report socket %s: %w", path, err)
	}
	if fi.Mode()&fs.ModeSocket == 0 {
		return fmt.Errorf("metrics: %s exists and is not a socket: remove it or choose another --data-dir", path)
	}
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
	if err == nil {
		c.Close()
		return fmt.Errorf("metrics: another agent listens on %s (one medianetd node agent per data directory)", path)
	}
	if errors.Is(err, syscall.EPROTOTYPE) {
		return fmt.Errorf("metrics: an older medianetd listens on %s (datagram socket): stop it first", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("metrics: report socket %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("metrics: remove stale socket %s: %w", path, err)
	}
	return nil
}

// reportSink takes the reports the listener accepted.
type reportSink interface {
	// take records a report that passed every check.
	take(report.Report)
	// refuse counts a report refused for reason ("" for malformed).
	refuse(reason string)
}

// serveReports reads one report from each connection accepted on l, at
// most reportWorkers at once, until l is closed.
func serveReports(l *net.UnixListener, sink reportSink) {
	var wg sync.WaitGroup
	defer wg.Wait()
	sem := make(chan struct{}, reportWorkers)
	uid := os.Getuid()
	for {
		c, err := l.AcceptUnix()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond) // EMFILE and kin: let fds free up
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			defer c.Close()
			readReport(c, uid, sink)
		})
	}
}

// readReport checks the sender of c (root or the agent's own user),
// reads its one report and checks its values.
func readReport(c *net.UnixConn, agentUID int, sink reportSink) {
	cred, err := peerCred(c)
	if err != nil || (cred.Uid != 0 && int(cred.Uid) != agentUID) {
		sink.refuse(RefusedSender)
		return
	}
	_ = c.SetReadDeadline(time.Now().Add(reportReadTimeout))
	b, err := io.ReadAll(io.LimitReader(c, report.MaxSize+1))
	if err != nil || len(b) > report.MaxSize {
		sink.refuse("")
		return
	}
	r, err := report.Decode(b)
	if err != nil {
		sink.refuse("")
		return
	}
	if report.Check(r) != nil {
		sink.refuse(RefusedBounds)
		return
	}
	sink.take(r)
}

// peerCred returns the credentials of c's peer at connect time.
func peerCred(c *net.UnixConn) (*unix.Ucred, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return nil, err
	}
	return cred, cerr
}
