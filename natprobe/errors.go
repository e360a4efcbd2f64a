package natprobe

import "errors"

// Sentinel errors, inspected with errors.Is.
var (
	// ErrNoReply means every retransmission of a request went unanswered
	// within the test's time bound. It says nothing about why.
	ErrNoReply = errors.New("natprobe: no reply after retransmissions")
	// ErrNoServer means a probe was asked to run without a server address.
	ErrNoServer = errors.New("natprobe: no server given")
	// ErrFamilyMismatch means the servers given mix IPv4 and IPv6.
	ErrFamilyMismatch = errors.New("natprobe: servers mix IPv4 and IPv6")
	// ErrBadReport means a probe report read for ice is incomplete.
	ErrBadReport = errors.New("natprobe: bad probe report")
	// ErrNotRequest means a packet given to the server is not a STUN
	// Binding request; the server drops it without a reply.
	ErrNotRequest = errors.New("natprobe: not a binding request")
	// ErrRateLimited means the server dropped a request because its source
	// (or, in a flood of new sources, every new source) exceeded its rate.
	ErrRateLimited = errors.New("natprobe: source rate limited")
	// ErrBadTURNURI means a TURN server URI is not turn:HOST:PORT[?transport=udp|tcp]
	// or turns:HOST:PORT.
	ErrBadTURNURI = errors.New("natprobe: bad TURN server URI")
	// ErrNoCredentials means a TURN check was asked to run without
	// --user/--password or --secret.
	ErrNoCredentials = errors.New("natprobe: no TURN credentials")

	// errLate ends an exchange whose late hook accepted a packet: an
	// answer to an earlier request of the same test arrived.
	errLate = errors.New("natprobe: late answer to an earlier request")
	// errTimeout ends a TURN transaction that outlived the check's timeout.
	errTimeout = errors.New("timed out")
)
