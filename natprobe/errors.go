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
	// exceeded the per-source rate.
	ErrRateLimited = errors.New("natprobe: source rate limited")
)
