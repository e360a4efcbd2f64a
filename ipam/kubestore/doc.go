// Package kubestore claims per-node address blocks in the Kubernetes API
// (ipam.kubernetes), so that a cluster needs no etcd of medianet's: the
// nodes of a cluster never hand out the same address, and each allocates
// from its own blocks without asking the API server. It mirrors
// ipam/etcdstore's semantics; only this package (and the programs that
// import it, medianet-ipam-kube) link client-go.
//
// Objects (deploy/kubernetes/ipam-crds.yaml, group ipam.medianet.io,
// version v1alpha1, cluster-scoped):
//
//	IPAMNetwork <net>          the network's subnets and block lengths, created by the first claim, immutable
//	IPAMBlock   <net>.<block>  one claim: spec {network, cidr, node, nodeUID}, status {inUse, emptySince}
//	IPAMSticky  <net>.<hash>   one sticky workload's interface: spec {network, workload, ifname, node, state, ips, until, writes}
//
// A claim is a create of the block's object, which the API server accepts
// only when no object of that name exists (409 AlreadyExists otherwise),
// after the node found the network's IPAMNetwork equal to its own
// configuration (ErrConfigMismatch names both): the name is a function of
// the network and the block, so two nodes can never both hold a block.
// The picker starts at an index given by an FNV hash of the node name,
// after one list of the network's blocks, and moves on when a create
// answers 409. Updates (status marks) carry the resourceVersion they read
// and deletes (give-back, reclaim) a resourceVersion precondition, so a
// claim that changed in between is never overwritten or deleted.
//
// Every API operation is bounded by Config.RequestTimeout (2 s by
// default, for a whole claim); when the API server cannot be reached, or
// does not answer, the error wraps ErrUnavailable (and ipam.ErrBusy) and
// names the server. The connection is made lazily, so a node allocating
// from blocks it holds never contacts the API server, and the allocator
// never calls a source under the node's store lock.
//
// Sticky addresses (ipam.sticky) follow etcdstore's design exactly
// (sticky.go): one IPAMSticky per workload and interface says which node
// its addresses are bound to, live there or held there until a time, and
// every decision (take a hold back, move it to another node, publish,
// expire, roll forward, undo) is one create, update or delete of that
// object conditional on the version read. The etcd source takes these
// decisions with single-key compare-and-swap too (no multi-key
// transaction), so the mapping is one to one: resourceVersion for
// ModRevision, the resourceVersion of a list for a read's header
// revision. The node's store follows the records in the sync (SyncIdle,
// SettleDue), and a block just claimed or adopted keeps the addresses
// records bind to other nodes reserved (TakeForeign).
//
// Unlike etcdstore, this source has no tombstones and no mixed block
// lengths: a network whose block length differs from the one recorded
// is refused with a configuration error. A forced reclaim deletes the
// blocks (the dead node's addresses are not kept reserved) and every
// IPAMSticky naming the node (its holds are lost: its workloads get new
// addresses); without force, live records are refused as live blocks
// are, and only expired holds are deleted. ReclaimGone reclaims only
// blocks whose claimant recorded its Node object's UID and whose Node
// object is gone, and the records of such nodes when no Node of their
// name exists.
package kubestore

import (
	"errors"

	"github.com/medianet/medianet/ipam"
)

// Sentinel errors; inspect with errors.Is.
var (
	// ErrUnavailable: the API server could not be reached or did not
	// answer within the request timeout; it also matches ipam.ErrBusy.
	ErrUnavailable error = &kindError{"kubernetes API server unavailable, try again later", ipam.ErrBusy}
	// ErrAuth: the API server refused the credentials or the permission;
	// it also matches ipam.ErrConfig.
	ErrAuth error = &kindError{"kubernetes API server refused the request (credentials or RBAC: deploy/kubernetes/ipam-rbac.yaml)", ipam.ErrConfig}
	// ErrConfigMismatch: the network's IPAMNetwork differs from this
	// node's configuration; the message names both values.
	ErrConfigMismatch error = &kindError{"network config differs from the one recorded in the Kubernetes API", ipam.ErrConfig}
	// ErrConfig: a Config or ipam.Config value cannot be used with this
	// source; the message names the field.
	ErrConfig error = &kindError{"invalid kubernetes IPAM configuration", ipam.ErrConfig}
	// ErrExhausted: every block of the subnet is claimed.
	ErrExhausted error = &kindError{"no unclaimed block left", ipam.ErrExhausted}
	// ErrNotOwner: the block is claimed by another node; it also matches
	// ipam.ErrOutOfRange.
	ErrNotOwner error = &kindError{"block claimed by another node", ipam.ErrOutOfRange}
	// ErrLiveBlocks: Reclaim found blocks not marked empty and was not
	// forced.
	ErrLiveBlocks = errors.New("node still holds blocks that may have live allocations")
	// ErrHeldNotFull: Next declined to claim because held blocks have
	// free addresses; it also matches ipam.ErrExhausted, on which the
	// allocator reuses them.
	ErrHeldNotFull error = &kindError{"held blocks not full", ipam.ErrExhausted}
)

// kindError is a sentinel that also matches the ipam sentinel for its kind
// of failure, keeping its own message.
type kindError struct {
	msg  string
	kind error
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.kind }
