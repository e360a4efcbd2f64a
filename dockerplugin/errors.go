package dockerplugin

import "errors"

// Sentinel errors. Errors returned to Docker wrap one of these with a
// message naming the option, network, endpoint or address at fault; match
// them with errors.Is.
var (
	// ErrBadOption: a -o, --ipam-opt, --subnet, --ip-range, --gateway,
	// --aux-address or --ip value is missing, unknown or malformed.
	ErrBadOption = errors.New("invalid option")
	// ErrParentNotFound: the parent link named by -o parent does not exist
	// on this host.
	ErrParentNotFound = errors.New("parent link not found")
	// ErrPoolOverlap: the requested subnet overlaps a pool already in use
	// in the same address space.
	ErrPoolOverlap = errors.New("subnet overlaps an existing pool")
	// ErrOutOfPool: a requested address lies outside the pool or outside
	// the range this node hands out.
	ErrOutOfPool = errors.New("address outside the pool")
	// ErrUnknown: a network, endpoint or pool ID that medianetd does not
	// know (never created, or already deleted).
	ErrUnknown = errors.New("unknown object")
	// ErrEtcdRequired: a pool created with --etcd-endpoints is used by a
	// medianetd started without it.
	ErrEtcdRequired = errors.New("pool needs etcd")
	// ErrEngineUnavailable: the Docker engine could not be asked which
	// networks exist (socket missing, dockerd starting or busy), so state
	// it may have forgotten cannot be told stale and is kept.
	ErrEngineUnavailable = errors.New("docker engine unavailable")
	// ErrPoolReleased: the pool was released, or found stale and dropped,
	// while an address was being allocated from it; the address is given
	// back.
	ErrPoolReleased = errors.New("pool released meanwhile")
)
