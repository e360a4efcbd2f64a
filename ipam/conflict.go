package ipam

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"
)

// ConflictPrefix starts the ContainerID of a quarantine: an address of
// this node's block that another host on the LAN answered for when it was
// probed before being handed out (an ARP probe or duplicate address
// detection). Key{network, ConflictPrefix+mac, addr}. The quarantine
// keeps the address used, so the allocator skips it, until its RetryAt;
// then it is freed and the address is probed again when it comes round.
// It is a local fact of the node's store about its own block: it is never
// published to a cluster store.
const ConflictPrefix = "conflict:"

// ConflictKey returns the key quarantining addr, answered for by mac.
func ConflictKey(network string, mac net.HardwareAddr, addr netip.Addr) Key {
	return Key{Network: network, ContainerID: ConflictPrefix + mac.String(), IfName: addr.String()}
}

// IsConflict reports whether a is a quarantine (see ConflictPrefix).
func (a Allocation) IsConflict() bool { return strings.HasPrefix(a.ContainerID, ConflictPrefix) }

// Conflict is an address another host answered for, by its MAC.
type Conflict struct {
	Addr netip.Addr
	MAC  net.HardwareAddr
	// At is when the answer came.
	At time.Time
}

func (c Conflict) String() string { return fmt.Sprintf("%s answered by %s", c.Addr, c.MAC) }

// Defaults and bounds of the conflict check, for the CNI plugin and the
// Docker driver (docs/ipam.md, "Conflict detection", says why these).
const (
	// DefaultConflictCheck is how long an address is probed when the
	// configuration does not say.
	DefaultConflictCheck = 200 * time.Millisecond
	// MaxConflictCheck bounds the check: an ADD may take ConflictTries
	// of them.
	MaxConflictCheck = 5 * time.Second
	// DefaultConflictRetry is how long an address answered for stays
	// quarantined when the configuration does not say.
	DefaultConflictRetry = 10 * time.Minute
	// ConflictTries bounds the allocations one request probes: after
	// that many tries that each met an answer, it fails naming them.
	ConflictTries = 4
)

// metaConflictNext is the Meta key holding the earliest RetryAt of the
// network's quarantines (RFC 3339), so that an ADD looks at them only
// when one is due: one Get otherwise.
const metaConflictNext = "conflictNext"

// Quarantine gives up the attachment k in one transaction and quarantines
// the addresses of conflicts that k held until retryAt: k's other
// addresses are freed (the caller allocates again, and those are probed
// again with the new ones). It returns the allocation given up.
//
// An attachment that took its addresses from its workload's sticky hold
// (Allocation.Resumed) is left alone and ErrConflict returned: the
// workload's address is answered by another host, and choosing another
// one for it is the operator's call (end the hold with medianetctl ipam
// release). The caller undoes its ADD with Abort, which gives the hold
// back.
func Quarantine(ctx context.Context, st Store, k Key, conflicts []Conflict, retryAt time.Time) (Allocation, error) {
	var out Allocation
	err := st.Update(ctx, func(tx Tx) error {
		al, ok, err := tx.Allocation(k)
		if err != nil || !ok {
			return err
		}
		out = al
		if !al.Resumed.IsZero() {
			return fmt.Errorf("network %q: %s/%s: the sticky address of workload %q is answered by another host (%s): %w",
				k.Network, k.ContainerID, k.IfName, al.Workload, conflictList(conflicts), ErrConflict)
		}
		if _, _, err := releaseTx(tx, k); err != nil {
			return err
		}
		for _, c := range conflicts {
			if !containsAddr(al.IPs, c.Addr) {
				continue
			}
			if err := quarantineTx(tx, k.Network, c, retryAt); err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}

// quarantineTx marks c's address used in its block and records the
// quarantine. An address whose block is gone (a bound address, which goes
// with its last allocation) or in use again is left alone.
func quarantineTx(tx Tx, network string, c Conflict, retryAt time.Time) error {
	b, ok, err := tx.BlockContaining(network, c.Addr)
	if err != nil || !ok {
		return err
	}
	off, _ := b.Offset(c.Addr)
	if b.IsUsed(off) {
		return nil
	}
	b.SetUsed(off, true)
	if err := tx.PutBlock(network, b); err != nil {
		return err
	}
	q := Allocation{Key: ConflictKey(network, c.MAC, c.Addr), IPs: []netip.Addr{c.Addr}, Created: c.At.UTC(),
		Conflict: c.MAC.String(), RetryAt: retryAt.UTC()}
	if err := tx.PutAllocation(q); err != nil {
		return err
	}
	next, ok, err := conflictNext(tx, network)
	if err != nil || (ok && !retryAt.Before(next)) {
		return err
	}
	return tx.PutMeta(network, metaConflictNext, []byte(retryAt.UTC().Format(time.RFC3339Nano)))
}

// conflictNext returns the earliest RetryAt of network's quarantines, as
// recorded.
func conflictNext(tx Tx, network string) (time.Time, bool, error) {
	v, err := tx.Meta(network, metaConflictNext)
	if err != nil || len(v) == 0 {
		return time.Time{}, false, err
	}
	t, err := time.Parse(time.RFC3339Nano, string(v))
	if err != nil {
		// A bad mark only costs a scan: look now.
		return time.Time{}, true, nil
	}
	return t, true, nil
}

// ExpireConflicts frees, inside the caller's transaction, the quarantines
// of network whose RetryAt is not after now. It costs one Get unless one
// is due.
func ExpireConflicts(tx Tx, network string, now time.Time) error {
	next, ok, err := conflictNext(tx, network)
	if err != nil || !ok || now.Before(next) {
		return err
	}
	var due []Key
	var later time.Time
	err = tx.ForEachAllocation(network, func(a Allocation) error {
		switch {
		case !a.IsConflict():
		case !now.Before(a.RetryAt):
			due = append(due, a.Key)
		case later.IsZero() || a.RetryAt.Before(later):
			later = a.RetryAt
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range due {
		if _, _, err := releaseTx(tx, k); err != nil {
			return err
		}
	}
	mark := []byte{}
	if !later.IsZero() {
		mark = []byte(later.UTC().Format(time.RFC3339Nano))
	}
	return tx.PutMeta(network, metaConflictNext, mark)
}

// ReleaseConflicts frees every quarantine of network in one transaction:
// for the owner of a network that goes away (a Docker pool released), so
// that no quarantine outlives it.
func ReleaseConflicts(ctx context.Context, st Store, network string) error {
	return st.Update(ctx, func(tx Tx) error {
		var qs []Key
		err := tx.ForEachAllocation(network, func(a Allocation) error {
			if a.IsConflict() {
				qs = append(qs, a.Key)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range qs {
			if _, _, err := releaseTx(tx, k); err != nil {
				return err
			}
		}
		return tx.PutMeta(network, metaConflictNext, []byte{})
	})
}

func containsAddr(ips []netip.Addr, ip netip.Addr) bool {
	for _, x := range ips {
		if x == ip {
			return true
		}
	}
	return false
}

func conflictList(cs []Conflict) string {
	s := make([]string, len(cs))
	for i, c := range cs {
		s[i] = c.String()
	}
	return strings.Join(s, ", ")
}

// ConflictError is the error of an ADD whose every try met addresses
// that other hosts answer for: it names them and their MACs.
func ConflictError(network string, tries int, cs []Conflict) error {
	return fmt.Errorf("network %q: %d tries, every one met addresses other hosts on the LAN answer for: %s; they are quarantined (medianetctl ipam list): find those hosts, or exclude their addresses: %w",
		network, tries, conflictList(cs), ErrConflict)
}
