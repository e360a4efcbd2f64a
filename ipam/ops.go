package ipam

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
)

// Release frees the addresses of the attachment k, if any, in one
// transaction. It reports the allocation released and whether there was one;
// releasing a missing allocation is not an error (CNI DEL is idempotent).
func Release(ctx context.Context, st Store, k Key) (Allocation, bool, error) {
	var out Allocation
	var found bool
	err := st.Update(ctx, func(tx Tx) error {
		var err error
		out, found, err = releaseTx(tx, k)
		return err
	})
	return out, found, err
}

func releaseTx(tx Tx, k Key) (Allocation, bool, error) {
	a, ok, err := tx.Allocation(k)
	if err != nil || !ok {
		return a, false, err
	}
	for _, ip := range a.IPs {
		b, ok, err := tx.BlockContaining(k.Network, ip)
		if err != nil {
			return a, false, err
		}
		if !ok {
			continue // tolerated: the address's block is gone
		}
		off, _ := b.Offset(ip)
		b.SetUsed(off, false)
		if err := tx.PutBlock(k.Network, b); err != nil {
			return a, false, err
		}
	}
	return a, true, tx.DeleteAllocation(k)
}

// Attachment is a (containerID, ifname) pair, as CNI GC's
// cni.dev/valid-attachments lists them.
type Attachment struct {
	ContainerID string
	IfName      string
}

// GC releases, in one transaction, every allocation of network whose
// attachment is not in valid, and returns those released.
func GC(ctx context.Context, st Store, network string, valid []Attachment) ([]Allocation, error) {
	keep := make(map[Attachment]bool, len(valid))
	for _, v := range valid {
		keep[v] = true
	}
	var out []Allocation
	err := st.Update(ctx, func(tx Tx) error {
		out = nil
		var stale []Key
		err := tx.ForEachAllocation(network, func(a Allocation) error {
			if !keep[Attachment{a.ContainerID, a.IfName}] {
				stale = append(stale, a.Key)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range stale {
			a, _, err := releaseTx(tx, k)
			if err != nil {
				return err
			}
			out = append(out, a)
		}
		return nil
	})
	return out, err
}

// List returns the allocations of network, or of every network when
// network is empty, ordered by network, container and interface.
func List(ctx context.Context, st Store, network string) ([]Allocation, error) {
	var out []Allocation
	err := st.View(ctx, func(tx Tx) error {
		nets := []string{network}
		if network == "" {
			var err error
			if nets, err = tx.Networks(); err != nil {
				return err
			}
		}
		for _, n := range nets {
			err := tx.ForEachAllocation(n, func(a Allocation) error {
				out = append(out, a)
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	slices.SortFunc(out, func(a, b Allocation) int {
		if c := cmpStr(a.Network, b.Network); c != 0 {
			return c
		}
		if c := cmpStr(a.ContainerID, b.ContainerID); c != 0 {
			return c
		}
		return cmpStr(a.IfName, b.IfName)
	})
	return out, err
}

func cmpStr(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Check verifies the store's consistency: every allocated address has a
// reverse index entry naming its allocation, lies in a held block with its
// Used bit set and its Reserved bit clear, and every Used bit belongs to an
// allocation. Errors wrap ErrCorrupt.
func Check(ctx context.Context, st Store) error {
	return st.View(ctx, func(tx Tx) error {
		nets, err := tx.Networks()
		if err != nil {
			return err
		}
		for _, n := range nets {
			if err := checkNetwork(tx, n); err != nil {
				return fmt.Errorf("network %q: %w", n, err)
			}
		}
		return nil
	})
}

func checkNetwork(tx Tx, network string) error {
	owned := map[netip.Addr]Key{}
	err := tx.ForEachAllocation(network, func(a Allocation) error {
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
			if off, _ := b.Offset(ip); !b.IsUsed(off) || b.IsReserved(off) {
				return fmt.Errorf("%s of %v: block %s bit used=%t reserved=%t: %w", ip, a.Key, b.Prefix, b.IsUsed(off), b.IsReserved(off), ErrCorrupt)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return tx.ForEachBlock(network, func(b Block) error {
		for i := range b.Len() {
			if b.IsUsed(i) {
				if _, ok := owned[b.Addr(i)]; !ok {
					return fmt.Errorf("block %s: %s marked used but not allocated: %w", b.Prefix, b.Addr(i), ErrCorrupt)
				}
			}
		}
		return nil
	})
}

// Status returns nil when an allocation could succeed: some held block of
// every subnet has a free address, or the source can give another block.
// Otherwise it returns an error wrapping ErrExhausted.
func (a *Allocator) Status(ctx context.Context) error {
	for _, s := range a.cfg.Subnets {
		held := map[netip.Prefix]bool{}
		var avail bool
		err := a.st.View(ctx, func(tx Tx) error {
			_, ok, err := tx.NextAvailable(a.cfg.Network, s.Prefix, s.Prefix.Addr())
			if err != nil || ok {
				avail = ok
				return err
			}
			return tx.ForEachBlock(a.cfg.Network, func(b Block) error {
				held[b.Prefix] = true
				return nil
			})
		})
		if err != nil {
			return err
		}
		if avail {
			continue
		}
		_, err = a.src.Next(ctx, s.Prefix, a.cfg.BlockBits(s.Prefix), held)
		if errors.Is(err, ErrExhausted) {
			return a.exhausted(s.Prefix)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Get returns the allocation of the attachment, or ErrNotFound.
func (a *Allocator) Get(ctx context.Context, containerID, ifname string) (Allocation, error) {
	k := Key{Network: a.cfg.Network, ContainerID: containerID, IfName: ifname}
	var out Allocation
	err := a.st.View(ctx, func(tx Tx) error {
		var ok bool
		var err error
		out, ok, err = tx.Allocation(k)
		if err == nil && !ok {
			err = fmt.Errorf("network %q: no allocation for %s/%s: %w", k.Network, containerID, ifname, ErrNotFound)
		}
		return err
	})
	return out, err
}

// Release frees the attachment's addresses; see the package-level Release.
func (a *Allocator) Release(ctx context.Context, containerID, ifname string) (Allocation, bool, error) {
	return Release(ctx, a.st, Key{Network: a.cfg.Network, ContainerID: containerID, IfName: ifname})
}

// GC releases every allocation of the network not in valid.
func (a *Allocator) GC(ctx context.Context, valid []Attachment) ([]Allocation, error) {
	return GC(ctx, a.st, a.cfg.Network, valid)
}

// List returns the network's allocations.
func (a *Allocator) List(ctx context.Context) ([]Allocation, error) {
	return List(ctx, a.st, a.cfg.Network)
}
