// Package report carries the outcome of one CNI verb from the exec'd
// plugin (medianet, medianet-ipam), which has no server of its own, to the
// node agent (medianetd, package metrics): the agent serves /metrics and
// syncs etcd networks soon after a DEL that asks for it (Report.Sync).
//
// The channel is one connection per report to <dataDir>/metrics.sock, a
// unix stream socket the agent of that data directory listens on with a
// large backlog (Backlog): the report is written into the connection's
// queue and the plugin closes it at once, without waiting for the agent
// to accept it. While the agent is descheduled, up to the backlog's
// length of reports wait in the kernel (a datagram socket holds only
// net.unix.max_dgram_qlen, 10 by default, which lost 989 of a burst of
// 1,000). When no agent listens (no socket, or nobody bound to it) the
// report is dropped at once; when the backlog is full, it is dropped and
// counted: one byte appended to <dataDir>/metrics.lost, which the agent
// creates and serves as a counter. A plugin never waits for its metrics,
// and never fails because of them. The encoding is a small JSON object
// (Report); Check says which values a plugin can really send.
//
// The package imports only the standard library, so the plugin binaries
// stay small (test: metrics/report's dependency list).
package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"syscall"
	"time"
)

// SocketName is the agent's socket inside the data directory.
const SocketName = "metrics.sock"

// LostName is the file in the data directory that counts, one byte each,
// the reports refused because the agent's backlog was full. The agent
// creates it; a plugin only appends to it (no agent, no file, no count).
const LostName = "metrics.lost"

// Backlog is the listen backlog the agent asks for: reports queued while
// it is descheduled. The kernel caps it at net.core.somaxconn (4096 by
// default since Linux 5.4).
const Backlog = 4096

// DefaultDataDir is the data directory when a configuration names none
// (the CNI plugins' default, cni.DefaultDataDir).
const DefaultDataDir = "/var/lib/medianet"

// Version is the encoding version a Report carries in "v".
const Version = 1

// MaxSize bounds an encoded report; the agent reads no more of a connection.
const MaxSize = 4096

// Plugins that send reports (Report.Plugin), and "docker" for the calls
// medianetd times itself.
const (
	PluginMain   = "medianet"
	PluginIPAM   = "medianet-ipam"
	PluginDocker = "docker"
)

// Verbs are the CNI verbs a plugin reports.
var Verbs = []string{"ADD", "DEL", "CHECK", "GC", "STATUS"}

// Sentinel errors of Decode.
var (
	// ErrMalformed: the message is not a report of a known version.
	ErrMalformed = errors.New("malformed report")
	// ErrOutOfBounds: a well-formed report with a value no plugin sends
	// (Check).
	ErrOutOfBounds = errors.New("report out of bounds")
)

// Bounds of what a plugin reports (Check). A verb that runs longer than
// MaxDuration has been killed by any runtime; one verb claims a block or
// two per subnet and makes a few etcd round trips, far fewer than
// MaxCount; CNI error codes are below 1000. Well inside these, a counter
// neither overflows nor is spoiled by one report.
const (
	MaxDuration = time.Hour
	MaxCount    = 1000
	MaxCode     = 999
	// MaxNetwork bounds a network name's length (libcni's names are
	// short DNS-like words).
	MaxNetwork = 253
)

// Report is the outcome of one verb.
type Report struct {
	// V is Version.
	V int `json:"v"`
	// Plugin is PluginMain or PluginIPAM (PluginDocker for medianetd's own).
	Plugin string `json:"plugin"`
	// Verb is one of Verbs (for Docker: the call, "NetworkDriver.Join").
	Verb string `json:"verb"`
	// Network is the network's name ("" when the configuration did not
	// parse).
	Network string `json:"network,omitempty"`
	// Code is the CNI error code returned, 0 on success.
	Code uint `json:"code"`
	// Duration is the verb's wall time in the plugin.
	Duration time.Duration `json:"dur"`
	// LockWait is the time the verb waited for the node's store lock.
	LockWait time.Duration `json:"lockWait,omitempty"`
	// Claims, ClaimFailures and EtcdErrors count the block claims the
	// verb made, those that failed, and the etcd operations that failed
	// (unreachable, refused credentials).
	Claims        int `json:"claims,omitempty"`
	ClaimFailures int `json:"claimFailures,omitempty"`
	EtcdErrors    int `json:"etcdErrors,omitempty"`
	// Conflicts counts the addresses another host answered for when the
	// ADD probed them (quarantined).
	Conflicts int `json:"conflicts,omitempty"`
	// Sync asks the node agent for an etcd sync soon: the verb emptied a
	// block (to give back) or left a sticky hold (to publish). Other verbs
	// wait for the agent's timer, so etcd's load does not follow churn.
	Sync bool `json:"sync,omitempty"`
}

// Check reports whether r holds only what a plugin (PluginMain,
// PluginIPAM) can send: one of Verbs, durations within MaxDuration with
// the lock wait inside the verb's time, counts up to MaxCount, a code up
// to MaxCode. Errors wrap ErrOutOfBounds and name the field.
func Check(r Report) error {
	switch {
	case r.Plugin != PluginMain && r.Plugin != PluginIPAM:
		return fmt.Errorf("report: plugin %q: %w", r.Plugin, ErrOutOfBounds)
	case !slices.Contains(Verbs, r.Verb):
		return fmt.Errorf("report: verb %q: %w", r.Verb, ErrOutOfBounds)
	case len(r.Network) > MaxNetwork:
		return fmt.Errorf("report: network name of %d bytes: %w", len(r.Network), ErrOutOfBounds)
	case r.Duration > MaxDuration:
		return fmt.Errorf("report: dur %s, more than %s: %w", r.Duration, MaxDuration, ErrOutOfBounds)
	case r.LockWait > r.Duration:
		return fmt.Errorf("report: lockWait %s longer than the verb (%s): %w", r.LockWait, r.Duration, ErrOutOfBounds)
	case r.Claims > MaxCount || r.ClaimFailures > MaxCount || r.EtcdErrors > MaxCount || r.Conflicts > MaxCount:
		return fmt.Errorf("report: claims %d, claimFailures %d, etcdErrors %d: more than %d: %w",
			r.Claims, r.ClaimFailures, r.EtcdErrors, MaxCount, ErrOutOfBounds)
	case r.Code > MaxCode:
		return fmt.Errorf("report: code %d, more than %d: %w", r.Code, MaxCode, ErrOutOfBounds)
	}
	return nil
}

// SocketPath returns the agent's socket for dataDir ("" means
// DefaultDataDir).
func SocketPath(dataDir string) string {
	if dataDir == "" {
		dataDir = DefaultDataDir
	}
	return filepath.Join(dataDir, SocketName)
}

// LostPath returns the lost-report counter file of dataDir.
func LostPath(dataDir string) string {
	return filepath.Join(filepath.Dir(SocketPath(dataDir)), LostName)
}

// Marshal encodes r (setting V).
func (r Report) Marshal() ([]byte, error) {
	r.V = Version
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("report: encode: %w", err)
	}
	if len(b) > MaxSize {
		return nil, fmt.Errorf("report: %d bytes, more than %d: %w", len(b), MaxSize, ErrMalformed)
	}
	return b, nil
}

// Decode parses one report. It rejects an unknown version, a missing
// plugin or verb, and negative counts or durations.
func Decode(b []byte) (Report, error) {
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return Report{}, fmt.Errorf("report: %w: %w", ErrMalformed, err)
	}
	switch {
	case r.V != Version:
		return Report{}, fmt.Errorf("report: version %d, want %d: %w", r.V, Version, ErrMalformed)
	case r.Plugin == "" || r.Verb == "":
		return Report{}, fmt.Errorf("report: plugin or verb missing: %w", ErrMalformed)
	case r.Duration < 0 || r.LockWait < 0 || r.Claims < 0 || r.ClaimFailures < 0 || r.EtcdErrors < 0 || r.Conflicts < 0:
		return Report{}, fmt.Errorf("report: negative duration or count: %w", ErrMalformed)
	}
	return r, nil
}

// Send sends r to the agent of dataDir without waiting: a non-blocking
// connect either queues the connection in the agent's backlog at once or
// is refused at once; the report is written into the connection and the
// connection closed, whether or not the agent accepted it yet. It returns
// why the report was dropped (no agent: ENOENT or ECONNREFUSED; backlog
// full: EAGAIN, counted in LostPath); callers ignore the error, since
// metrics must never fail a verb.
func Send(dataDir string, r Report) error {
	b, err := r.Marshal()
	if err != nil {
		return err
	}
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("report: socket: %w", err)
	}
	defer syscall.Close(fd)
	path := SocketPath(dataDir)
	if err := syscall.Connect(fd, &syscall.SockaddrUnix{Name: path}); err != nil {
		if errors.Is(err, syscall.EAGAIN) {
			countLost(dataDir)
		}
		return fmt.Errorf("report: connect to %s: %w", path, err)
	}
	// A fresh connection's send buffer holds far more than MaxSize: the
	// write is queued whole at once.
	n, err := syscall.SendmsgN(fd, b, nil, nil, syscall.MSG_DONTWAIT|syscall.MSG_NOSIGNAL)
	if err != nil {
		return fmt.Errorf("report: send to %s: %w", path, err)
	}
	if n != len(b) {
		return fmt.Errorf("report: send to %s: %d of %d bytes", path, n, len(b))
	}
	return nil
}

// countLost appends one byte to the agent's lost-report counter, if the
// agent created it.
func countLost(dataDir string) {
	fd, err := syscall.Open(LostPath(dataDir), syscall.O_WRONLY|syscall.O_APPEND|syscall.O_CLOEXEC|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return
	}
	_, _ = syscall.Write(fd, []byte{'x'})
	syscall.Close(fd)
}
