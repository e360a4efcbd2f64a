package metrics

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"syscall"

	"github.com/medianet/medianet/metrics/report"
)

// readBuffer is the socket's receive buffer: room for a burst of a few
// thousand reports (a node starting hundreds of pods at once) while the
// agent is descheduled.
const readBuffer = 4 << 20

// listenReports binds the report socket of dataDir (creating the
// directory 0700 when missing), mode 0600: only root's plugins send. A
// socket file left by an agent that died is replaced; one another agent
// still listens on is an error.
func listenReports(dataDir string) (*net.UnixConn, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("metrics: data directory %q: %w", dataDir, err)
	}
	path := report.SocketPath(dataDir)
	if err := removeStale(path); err != nil {
		return nil, err
	}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return nil, fmt.Errorf("metrics: listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		conn.Close()
		return nil, fmt.Errorf("metrics: chmod %s: %w", path, err)
	}
	_ = conn.SetReadBuffer(readBuffer) // best effort: the kernel caps it at rmem_max
	return conn, nil
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
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err == nil {
		c.Close()
		return fmt.Errorf("metrics: another agent listens on %s (one medianetd --metrics-listen per data directory)", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("metrics: report socket %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("metrics: remove stale socket %s: %w", path, err)
	}
	return nil
}

// serveReports records every datagram on conn until conn is closed.
func serveReports(conn *net.UnixConn, rec *Recorder, onReport func(report.Report)) {
	buf := make([]byte, report.MaxSize+1)
	for {
		// A datagram larger than buf arrives truncated (n == len(buf))
		// and is counted as malformed; the only error is a closed conn.
		n, _, err := conn.ReadFromUnix(buf)
		if err != nil {
			return
		}
		r, err := report.Decode(buf[:n])
		if err != nil || n > report.MaxSize {
			rec.malformed()
			continue
		}
		rec.received()
		rec.Observe(r)
		if onReport != nil {
			onReport(r)
		}
	}
}
