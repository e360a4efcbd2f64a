// Package etcdstore claims per-node address blocks in etcd, so that nodes
// of a cluster never hand out the same address while each allocates from
// its own blocks without asking etcd.
//
// Keys, under Config.Prefix (default "/medianet"):
//
//	<prefix>/networks/<net>/config              the network's subnets and block sizes, written on first use
//	<prefix>/networks/<net>/blocks/<addr>-<len>  one claim: {"node":..., "claimed":..., "empty":...}
//
// A claim is one etcd transaction that succeeds only if the block key does
// not exist and the network's recorded config equals this node's, so a node
// with a typo in its subnet or block size can never claim overlapping
// blocks (ErrConfigMismatch names both values). The block picker starts at
// an index given by an FNV hash of the node name, computes blocks by
// arithmetic (an IPv6 /64 in /120 blocks is never listed), tries a few
// candidates from there and, when those are taken, reads the claimed set
// with one prefix Get and takes the next unclaimed index.
//
// Every etcd operation is bounded by Config.RequestTimeout (2 s by
// default, for a whole claim including its retries); when etcd cannot be
// reached the error wraps ErrUnavailable and names the endpoints. The
// connection is made lazily on the first operation, so a process that
// allocates from blocks it already holds never contacts etcd.
//
// Source adapts a Client to ipam.BlockSource for one node and network;
// given the node's store, it claims only when every held block is full.
// Source.SyncIdle marks held blocks empty or used in etcd (a write only on
// a change) and gives back blocks empty for Config.IdleRelease.
//
// Giving a block back (Release, SyncIdle) and freeing a dead node's blocks
// (Reclaim) are transactions that compare the claim's ModRevision, so a
// claim that changed hands in between is never deleted. Reclaim refuses
// while a block is not marked empty unless forced.
package etcdstore

import (
	"errors"

	"github.com/medianet/medianet/ipam"
)

// Sentinel errors; inspect with errors.Is.
var (
	// ErrUnavailable: etcd could not be reached or did not answer within
	// the request timeout. The message names the endpoints. Try again later.
	// It also matches ipam.ErrBusy, so adapters map it without importing
	// this package (CNI error 11).
	ErrUnavailable error = &kindError{"etcd unavailable, try again later", ipam.ErrBusy}
	// ErrAuth: etcd refused the credentials or the user lacks permission on
	// the prefix. The message names the endpoints and the user. It also
	// matches ipam.ErrConfig (CNI error 7).
	ErrAuth error = &kindError{"etcd refused the credentials", ipam.ErrConfig}
	// ErrConfigMismatch: the network's config recorded in etcd differs from
	// this node's. The message names both values.
	ErrConfigMismatch = errors.New("network config differs from the one recorded in etcd")
	// ErrConfig: a Config or Network value is invalid; the message names
	// the field.
	ErrConfig = errors.New("invalid etcd configuration")
	// ErrExhausted: every block of the subnet is claimed.
	ErrExhausted = errors.New("no unclaimed block left")
	// ErrNotOwner: the block is not claimed by this node (any more).
	ErrNotOwner = errors.New("block not claimed by this node")
	// ErrLiveBlocks: Reclaim found blocks not marked empty and was not forced.
	ErrLiveBlocks = errors.New("node still holds blocks that may have live allocations")
	// ErrHeldNotFull: Source.Next declined to claim because the node's held
	// blocks still have free addresses; it also wraps ipam.ErrExhausted,
	// on which the allocator reuses them.
	ErrHeldNotFull = errors.New("held blocks not full")
)

// kindError is a sentinel that also matches the ipam sentinel for its kind
// of failure, keeping its own message.
type kindError struct {
	msg  string
	kind error
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.kind }
