package ipam

import (
	"context"
	"fmt"
	"net/netip"
	"time"
)

// Finding kinds reported by Check: states an operator should know of and
// act on, which are not corruption.
const (
	// FindingReservedInUse: an address the configuration now reserves
	// (gateway, exclude...) is still held by the attachment it was given
	// to before the change. It stays with it; it is never handed out again.
	FindingReservedInUse = "reserved-in-use"
	// FindingLostBlock: a held block the node may no longer allocate from
	// (Detail says why: another node claims it, or the configuration no
	// longer gives it to this node).
	FindingLostBlock = "lost-block"
	// FindingInLostBlock: an attachment holds an address of a lost block:
	// another node may hand the same address out. Move the workload.
	FindingInLostBlock = "in-lost-block"
	// FindingConflict: an address is quarantined because another host on
	// the LAN answered for it (MAC) when it was probed; it is not handed
	// out before RetryAt. Find that host, or exclude its address.
	FindingConflict = "conflict"
)

// Finding is one state of the store an operator should act on.
type Finding struct {
	Network  string       `json:"network"`
	Kind     string       `json:"kind"`
	Block    netip.Prefix `json:"block,omitzero"`
	Addr     netip.Addr   `json:"addr,omitzero"`
	Holder   *Key         `json:"holder,omitempty"`
	Workload string       `json:"workload,omitempty"`
	Detail   string       `json:"detail,omitempty"`
	// MAC and RetryAt: of a conflict, the MAC that answered and when the
	// address is tried again.
	MAC     string    `json:"mac,omitempty"`
	RetryAt time.Time `json:"retryAt,omitzero"`
}

func (f Finding) String() string {
	s := fmt.Sprintf("network %q: %s", f.Network, f.Kind)
	if f.Block.IsValid() {
		s += " block " + f.Block.String()
	}
	if f.Addr.IsValid() {
		s += " address " + f.Addr.String()
	}
	if f.Holder != nil {
		s += fmt.Sprintf(" held by %s/%s", f.Holder.ContainerID, f.Holder.IfName)
	}
	if f.MAC != "" {
		s += " answered by " + f.MAC
	}
	if f.Workload != "" {
		s += fmt.Sprintf(" (workload %q)", f.Workload)
	}
	if f.Detail != "" {
		s += ": " + f.Detail
	}
	return s
}

// Check verifies the store's consistency: every allocated address has a
// reverse index entry naming its allocation and lies in a held block with
// its Used bit set, and every Used bit belongs to an allocation. Errors
// wrap ErrCorrupt. It also returns the findings an operator should act on
// (addresses reserved while in use, lost blocks and who is in them), as
// the store last recorded the configuration.
func Check(ctx context.Context, st Store) ([]Finding, error) {
	var out []Finding
	err := st.View(ctx, func(tx Tx) error {
		nets, err := tx.Networks()
		if err != nil {
			return err
		}
		for _, n := range nets {
			f, err := checkNetwork(tx, n, func(b Block) Block { return b })
			if err != nil {
				return fmt.Errorf("network %q: %w", n, err)
			}
			out = append(out, f...)
		}
		return nil
	})
	return out, err
}

// Check is the package-level Check for the allocator's network, seen with
// the allocator's configuration (reserved addresses and ranges as it says
// them, even before an allocation brought the store in line).
func (a *Allocator) Check(ctx context.Context) ([]Finding, error) {
	var out []Finding
	err := a.st.View(ctx, func(tx Tx) error {
		var err error
		out, err = checkNetwork(tx, a.cfg.Network, a.current)
		return err
	})
	return out, err
}

func checkNetwork(tx Tx, network string, view func(Block) Block) ([]Finding, error) {
	var out []Finding
	owned := map[netip.Addr]Key{}
	err := tx.ForEachAllocation(network, func(a Allocation) error {
		if a.IsConflict() {
			for _, ip := range a.IPs {
				out = append(out, Finding{Network: network, Kind: FindingConflict, Addr: ip, MAC: a.Conflict, RetryAt: a.RetryAt,
					Detail: fmt.Sprintf("answered a probe at %s; not handed out before %s: find that host, or exclude its address",
						a.Created.Format(time.RFC3339), a.RetryAt.Format(time.RFC3339))})
			}
		}
		for _, ip := range a.IPs {
			if o, dup := owned[ip]; dup {
				return fmt.Errorf("%s held by both %v and %v: %w", ip, o, a.Key, ErrCorrupt)
			}
			owned[ip] = a.Key
			k, ok, err := tx.Owner(network, ip)
			if err != nil {
				return err
			}
			if !ok || k != a.Key {
				return fmt.Errorf("%s of %v: reverse index says %v (present %t): %w", ip, a.Key, k, ok, ErrCorrupt)
			}
			b, ok, err := tx.BlockContaining(network, ip)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("%s of %v is in no held block: %w", ip, a.Key, ErrCorrupt)
			}
			b = view(b)
			off, _ := b.Offset(ip)
			if !b.IsUsed(off) {
				return fmt.Errorf("%s of %v: block %s bit not marked used: %w", ip, a.Key, b.Prefix, ErrCorrupt)
			}
			if b.IsReserved(off) {
				out = append(out, Finding{Network: network, Kind: FindingReservedInUse, Block: b.Prefix, Addr: ip,
					Holder: &a.Key, Workload: a.Workload,
					Detail: "the configuration now reserves this address; it stays with its holder and is never handed out again"})
			}
			if !b.Usable() {
				out = append(out, Finding{Network: network, Kind: FindingInLostBlock, Block: b.Prefix, Addr: ip,
					Holder: &a.Key, Workload: a.Workload, Detail: b.Lost + "; another node may hand this address out: move the workload"})
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = tx.ForEachBlock(network, func(b Block) error {
		if vb := view(b); !vb.Usable() {
			out = append(out, Finding{Network: network, Kind: FindingLostBlock, Block: b.Prefix, Detail: vb.Lost})
		}
		if b.IsBound() && b.Free() > 0 {
			// A bound address is this node's only for its workload: free,
			// any ADD here could take it while its home node may too.
			return fmt.Errorf("block %s: bound to %s but not in use: %w", b.Prefix, b.Bound, ErrCorrupt)
		}
		for i := range b.Len() {
			if b.IsUsed(i) {
				if _, ok := owned[b.Addr(i)]; !ok {
					return fmt.Errorf("block %s: %s marked used but not allocated: %w", b.Prefix, b.Addr(i), ErrCorrupt)
				}
			}
		}
		return nil
	})
	return out, err
}
