// Package ipam is medianet's address management core: address math on
// net/netip for IPv4 and IPv6 alike, per-node blocks, node-range validation,
// and an Allocator that hands out addresses from the blocks a node holds.
//
// The model: a network has one or more subnets (one per address family for
// dual stack). Each subnet is sliced, lazily and by arithmetic, into blocks
// of Config.BlockSize (IPv4, default /26) or Config.BlockSize6 (IPv6, default
// /120). A node holds some blocks; a BlockSource hands it another when the
// held ones are full (StaticSource over the node's nodeRanges, or over the
// whole subnet for a single node, both from NewSource; ipam/etcdstore plugs
// in the same way).
// Inside a held block a bitmap marks used and reserved addresses, so finding
// a free address never scans allocations.
//
// Durability is a Store: one write transaction (Store.Update) per allocation.
// The package imports only the standard library; ipam/boltstore is the
// embedded default Store. Adapters (cni, dockerplugin) map the sentinel errors
// below to their own error codes with errors.Is.
package ipam

import "errors"

// Sentinel errors. Every error returned by this package and by its stores
// wraps at most a few of these; inspect them with errors.Is.
var (
	// ErrConfig: the configuration (or a request's parameters derived
	// from it, such as the store's directory) is invalid. The message names
	// the field.
	ErrConfig = errors.New("invalid configuration")
	// ErrOverlap: two node ranges overlap. Also wraps ErrConfig.
	ErrOverlap = errors.New("ranges overlap")
	// ErrOutOfRange: a requested address is not inside this node's ranges,
	// or is reserved (gateway, network, broadcast, exclude).
	ErrOutOfRange = errors.New("address out of range")
	// ErrTaken: a requested address belongs to another attachment.
	ErrTaken = errors.New("address taken")
	// ErrExhausted: no free address is left in the node's ranges.
	ErrExhausted = errors.New("no free address")
	// ErrBusy: the store is locked by other processes for longer than the
	// retry bound; try again later.
	ErrBusy = errors.New("store busy, try again later")
	// ErrNotFound: no allocation exists for the attachment.
	ErrNotFound = errors.New("allocation not found")
	// ErrCorrupt: the store failed a consistency check or has an unknown
	// schema version.
	ErrCorrupt = errors.New("store inconsistent")
	// ErrBlockLost: the node holds blocks it may no longer allocate from
	// (claimed by another node, or outside its ranges now); their
	// addresses may be in use twice. Status reports it.
	ErrBlockLost = errors.New("held block lost")
	// ErrConflict: another host on the LAN answered for an address about
	// to be handed out (see Quarantine).
	ErrConflict = errors.New("address answered by another host")
)
