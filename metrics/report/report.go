// Package report carries the outcome of one CNI verb from the exec'd
// plugin (medianet, medianet-ipam), which has no server of its own, to the
// node agent that serves /metrics (medianetd --metrics-listen, package
// metrics).
//
// The channel is one unixgram datagram, sent without waiting to
// <dataDir>/metrics.sock, the socket the agent of that data directory
// listens on. When no agent listens (no socket, or nobody bound to it) or
// its queue is full, the kernel refuses the datagram at once and the report
// is dropped: a plugin never waits for its metrics, and never fails
// because of them. The encoding is a small JSON object (Report).
//
// The package imports only the standard library, so the plugin binaries
// stay small (test: metrics/report's dependency list).
package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"syscall"
	"time"
)

// SocketName is the agent's socket inside the data directory.
const SocketName = "metrics.sock"

// DefaultDataDir is the data directory when a configuration names none
// (the CNI plugins' default, cni.DefaultDataDir).
const DefaultDataDir = "/var/lib/medianet"

// Version is the encoding version a Report carries in "v".
const Version = 1

// MaxSize bounds an encoded report; the agent reads datagrams this large.
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
	// ErrMalformed: the datagram is not a report of a known version.
	ErrMalformed = errors.New("malformed report")
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
	// Sync asks the node agent for an etcd sync soon: the verb emptied a
	// block (to give back) or left a sticky hold (to publish). Other verbs
	// wait for the agent's timer, so etcd's load does not follow churn.
	Sync bool `json:"sync,omitempty"`
}

// SocketPath returns the agent's socket for dataDir ("" means
// DefaultDataDir).
func SocketPath(dataDir string) string {
	if dataDir == "" {
		dataDir = DefaultDataDir
	}
	return filepath.Join(dataDir, SocketName)
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

// Decode parses one datagram. It rejects an unknown version, a missing
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
	case r.Duration < 0 || r.LockWait < 0 || r.Claims < 0 || r.ClaimFailures < 0 || r.EtcdErrors < 0:
		return Report{}, fmt.Errorf("report: negative duration or count: %w", ErrMalformed)
	}
	return r, nil
}

// Send sends r to the agent of dataDir without waiting: the datagram is
// queued or refused at once. It returns why it was dropped (no agent:
// ENOENT or ECONNREFUSED; agent behind: EAGAIN); callers ignore the
// error, since metrics must never fail a verb.
func Send(dataDir string, r Report) error {
	b, err := r.Marshal()
	if err != nil {
		return err
	}
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_DGRAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("report: socket: %w", err)
	}
	defer syscall.Close(fd)
	path := SocketPath(dataDir)
	if err := syscall.Sendto(fd, b, syscall.MSG_DONTWAIT, &syscall.SockaddrUnix{Name: path}); err != nil {
		return fmt.Errorf("report: send to %s: %w", path, err)
	}
	return nil
}
