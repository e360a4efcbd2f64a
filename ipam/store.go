package ipam

import (
	"context"
	"net/netip"
	"strings"
	"time"
)

// Key names one attachment: a container's interface on a network.
type Key struct {
	Network     string `json:"network"`
	ContainerID string `json:"containerID"`
	IfName      string `json:"ifname"`
}

// Allocation is the addresses held by one attachment, one per subnet.
type Allocation struct {
	Key
	IPs     []netip.Addr `json:"ips"`
	Created time.Time    `json:"created"`
	// Workload names the workload the attachment belongs to, stable across
	// its restarts ("namespace/name" of a Kubernetes pod), so an operator
	// can tell who holds an address and sticky networks can give the
	// workload its address back. Empty when the runtime does not say.
	Workload string `json:"workload,omitempty"`
	// HeldUntil is set on a sticky hold (see HoldKey): the addresses of a
	// workload whose attachment was deleted, kept for it until then.
	HeldUntil time.Time `json:"heldUntil,omitzero"`
	// Resumed is set on a live attachment that took its addresses from
	// its workload's hold: that hold's HeldUntil. Abort (a failed ADD)
	// gives the hold back as it was instead of freeing the addresses.
	Resumed time.Time `json:"resumed,omitzero"`
	// Published is set on a hold of a StickySource's network: the
	// revision of the workload's record over which the hold was last
	// published as "held here" (or is being: it is written before the
	// cluster store is told). An ADD taking the hold back compares it, so
	// a hold published since the ADD decided is decided again.
	Published int64 `json:"published,omitempty"`
	// Conflict is set on a quarantine (see ConflictKey): the MAC that
	// answered a probe for the address, which is then not handed out
	// until RetryAt. Created is when it answered.
	Conflict string `json:"conflict,omitempty"`
	// RetryAt is when a quarantined address may be handed out (and so
	// probed) again.
	RetryAt time.Time `json:"retryAt,omitzero"`
}

// IsHold reports whether a is a sticky hold rather than a live attachment.
func (a Allocation) IsHold() bool { return !a.HeldUntil.IsZero() }

// HoldPrefix starts the ContainerID of a sticky hold's key: the key of
// workload w's hold on interface ifname is Key{network, HoldPrefix+w,
// ifname}. Container IDs never contain ':'.
const HoldPrefix = "sticky:"

// HoldKey returns the key of workload's hold on ifname.
func HoldKey(network, workload, ifname string) Key {
	return Key{Network: network, ContainerID: HoldPrefix + workload, IfName: ifname}
}

// ForeignPrefix starts the ContainerID of a foreign reservation: an
// address of a block taken over from another node by a forced reclaim,
// which that node may still use. Key{network, ForeignPrefix+node, addr}.
const ForeignPrefix = "foreign:"

// ForeignKey returns the key reserving addr for node.
func ForeignKey(network, node string, addr netip.Addr) Key {
	return Key{Network: network, ContainerID: ForeignPrefix + node, IfName: addr.String()}
}

// MovedPrefix starts the ContainerID of a moved reservation: an address
// of this node's block that a sticky workload took to another node, kept
// until that node gives it back. Key{network, MovedPrefix+node, addr}.
const MovedPrefix = "moved:"

// MovedKey returns the key reserving addr while node uses it.
func MovedKey(network, node string, addr netip.Addr) Key {
	return Key{Network: network, ContainerID: MovedPrefix + node, IfName: addr.String()}
}

// IsReservation reports whether a keeps addresses for someone other than
// a live attachment of this node (a sticky hold, a foreign or moved
// reservation, a quarantine): GC leaves it alone.
func (a Allocation) IsReservation() bool {
	return a.IsHold() || a.IsConflict() || strings.HasPrefix(a.ContainerID, ForeignPrefix) || strings.HasPrefix(a.ContainerID, MovedPrefix)
}

// Store keeps allocations and held blocks durably. Update runs fn in one
// write transaction: all of fn's writes happen or none do. fn must not keep
// values past its return. Implementations: ipam/boltstore (embedded).
type Store interface {
	Update(ctx context.Context, fn func(Tx) error) error
	View(ctx context.Context, fn func(Tx) error) error
	Close() error
}

// ClaimLocker is implemented by stores that can serialise, per network,
// the processes of a node that need a new block from the source (see
// Allocator.Allocate): held while the source claims, never across a
// transaction.
type ClaimLocker interface {
	ClaimLock(ctx context.Context, network string) (unlock func(), err error)
}

// Tx is the view of the store inside one transaction. Write methods fail in
// a View. Values returned are copies owned by the caller.
type Tx interface {
	// Networks lists the networks with allocations or held blocks.
	Networks() ([]string, error)
	// Allocation returns the allocation of k.
	Allocation(k Key) (Allocation, bool, error)
	// ForEachAllocation calls fn for every allocation of network.
	ForEachAllocation(network string, fn func(Allocation) error) error
	// PutAllocation stores a and the reverse index entry of each of its IPs.
	PutAllocation(a Allocation) error
	// DeleteAllocation removes k and its reverse index entries.
	DeleteAllocation(k Key) error
	// Owner returns the attachment holding addr, from the reverse index.
	Owner(network string, addr netip.Addr) (Key, bool, error)
	// BlockContaining returns the held block holding addr.
	BlockContaining(network string, addr netip.Addr) (Block, bool, error)
	// NextAvailable returns the held block of network inside within that
	// has a free address and starts at or after from (in address order).
	NextAvailable(network string, within netip.Prefix, from netip.Addr) (Block, bool, error)
	// ForEachBlock calls fn for every held block of network.
	ForEachBlock(network string, fn func(Block) error) error
	// PutBlock stores b (replacing the block with the same prefix).
	PutBlock(network string, b Block) error
	// DeleteBlock forgets a held block (for sources that return empty
	// blocks to a cluster store). The caller ensures no address in it is used.
	DeleteBlock(network string, p netip.Prefix) error
	// Cursor returns the last address handed out in subnet, if any.
	Cursor(network string, subnet netip.Prefix) (netip.Addr, bool, error)
	// PutCursor records the last address handed out in subnet.
	PutCursor(network string, subnet netip.Prefix, a netip.Addr) error
	// ForEachHold calls fn for every sticky hold of network (allocations
	// whose ContainerID starts with HoldPrefix), without visiting the
	// other allocations.
	ForEachHold(network string, fn func(Allocation) error) error
	// Meta returns the network's value for key (nil when unset).
	Meta(network, key string) ([]byte, error)
	// PutMeta sets the network's value for key.
	PutMeta(network, key string, v []byte) error
}
