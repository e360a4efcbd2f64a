package ipam

import (
	"context"
	"net/netip"
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
}

// Store keeps allocations and held blocks durably. Update runs fn in one
// write transaction: all of fn's writes happen or none do. fn must not keep
// values past its return. Implementations: ipam/boltstore (embedded).
type Store interface {
	Update(ctx context.Context, fn func(Tx) error) error
	View(ctx context.Context, fn func(Tx) error) error
	Close() error
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
}
