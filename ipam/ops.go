package ipam

import (
	"context"
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

// ReleaseTx releases the allocation k, if any, inside the caller's
// transaction (for stores' own maintenance, such as releasing foreign
// reservations after a sync).
func ReleaseTx(tx Tx, k Key) error {
	_, _, err := releaseTx(tx, k)
	return err
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
		if b.IsBound() {
			// A bound address is this node's only while its workload
			// has it: it goes with its last allocation.
			if err := tx.DeleteBlock(k.Network, b.Prefix); err != nil {
				return a, false, err
			}
			continue
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
// attachment is not in valid, and returns those released. Reservations
// (sticky holds, foreign addresses) are not attachments: they stay
// (Allocator.GC frees the expired holds).
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
			if !a.IsReservation() && !keep[Attachment{a.ContainerID, a.IfName}] {
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

// Release frees the attachment's addresses, as the package-level Release
// does, except on a sticky network: an attachment that names its workload
// leaves a hold that keeps its addresses for the workload (Config.Sticky).
func (a *Allocator) Release(ctx context.Context, containerID, ifname string) (Allocation, bool, error) {
	k := Key{Network: a.cfg.Network, ContainerID: containerID, IfName: ifname}
	if a.cfg.Sticky <= 0 && !a.resumedHere(ctx, k) {
		return Release(ctx, a.st, k)
	}
	return a.release(ctx, k, false)
}

// resumedHere reports whether, with a cluster source, the attachment k
// took its addresses from its workload's record (a hold taken back or
// moved here): the record names this node, so even with stickiness
// turned off since, its release goes through a hold (of no period) that
// the sync expires through the record.
func (a *Allocator) resumedHere(ctx context.Context, k Key) bool {
	if _, cluster := a.src.(StickySource); !cluster {
		return false
	}
	resumed := false
	_ = a.st.View(ctx, func(tx Tx) error {
		al, ok, err := tx.Allocation(k)
		resumed = ok && !al.Resumed.IsZero()
		return err
	})
	return resumed
}

// Abort undoes an Allocate whose ADD failed later (the link could not be
// configured): on any error nothing is left. Addresses the attachment
// took from its workload's hold go back to that hold as it was; any
// others are freed, also on a sticky network (no hold is made for a
// workload that never ran).
func (a *Allocator) Abort(ctx context.Context, containerID, ifname string) error {
	k := Key{Network: a.cfg.Network, ContainerID: containerID, IfName: ifname}
	if a.cfg.Sticky <= 0 && !a.resumedHere(ctx, k) {
		_, _, err := Release(ctx, a.st, k)
		return err
	}
	_, _, err := a.release(ctx, k, true)
	return err
}

// release is Release on a sticky network (abort: Abort's rules). A hold
// made here is then published through the StickySource, outside the
// transaction.
func (a *Allocator) release(ctx context.Context, k Key, abort bool) (Allocation, bool, error) {
	var out, hold Allocation
	var found, held bool
	err := a.st.Update(ctx, func(tx Tx) error {
		var err error
		out, found, err = tx.Allocation(k)
		held = false
		until := a.Now().Add(a.cfg.Sticky)
		if abort {
			until = out.Resumed
		}
		switch {
		case err != nil || !found:
			return err
		case out.Workload == "" || out.IsHold() || until.IsZero():
			_, _, err = releaseTx(tx, k)
			return err
		}
		hold, held, err = a.holdTx(tx, out, until)
		return err
	})
	if ss, ok := a.src.(StickySource); err == nil && held && ok {
		// Told at once, so that the workload starting on another node
		// finds its hold; if the cluster store cannot be reached, the
		// source's sync publishes it later.
		_ = ss.PublishHold(ctx, hold, a.Now())
	}
	return out, found, err
}

// GC releases every allocation of the network not in valid, and the
// sticky holds and quarantines whose time is up.
func (a *Allocator) GC(ctx context.Context, valid []Attachment) ([]Allocation, error) {
	out, err := GC(ctx, a.st, a.cfg.Network, valid)
	if err != nil {
		return out, err
	}
	return out, a.st.Update(ctx, func(tx Tx) error {
		if err := a.expireHolds(tx); err != nil {
			return err
		}
		return ExpireConflicts(tx, a.cfg.Network, a.Now())
	})
}

// List returns the network's allocations.
func (a *Allocator) List(ctx context.Context) ([]Allocation, error) {
	return List(ctx, a.st, a.cfg.Network)
}

// Emptied reports whether a held block of network that contained one of
// ips has no address in use left: after a release, whether the node has a
// block to give back (the sync's work, outside the release). A store
// error counts as not emptied.
func Emptied(ctx context.Context, st Store, network string, ips []netip.Addr) bool {
	empty := false
	_ = st.View(ctx, func(tx Tx) error {
		for _, ip := range ips {
			b, ok, err := tx.BlockContaining(network, ip)
			if err != nil {
				return err
			}
			empty = empty || (ok && !slices.ContainsFunc(b.Used, func(w uint64) bool { return w != 0 }))
		}
		return nil
	})
	return empty
}
