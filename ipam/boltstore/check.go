package boltstore

import (
	"context"
	"fmt"
	"strings"

	"github.com/medianet/medianet/ipam"
	bolt "go.etcd.io/bbolt"
)

// Check verifies the whole store: ipam.Check (allocations, reverse index,
// bitmaps) plus every reverse index entry naming an allocation that holds
// that address, and bbolt's own page consistency. Errors wrap
// ipam.ErrCorrupt.
func (s *Store) Check(ctx context.Context) error {
	if _, err := ipam.Check(ctx, s); err != nil {
		return err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.with(ctx, false, func(db *bolt.DB) error { return db.View(checkTx) })
}

func checkTx(btx *bolt.Tx) error {
	var first error
	for err := range btx.Check() { // drain: the checker goroutine sends every error
		if first == nil {
			first = fmt.Errorf("boltstore: %s: %v: %w", btx.DB().Path(), err, ipam.ErrCorrupt)
		}
	}
	if first != nil {
		return first
	}
	t := &tx{btx: btx}
	nets, err := t.Networks()
	if err != nil {
		return err
	}
	for _, n := range nets {
		if err := t.checkReverse(n); err != nil {
			return err
		}
	}
	return nil
}

func (t *tx) checkReverse(network string) error {
	rb, err := t.net([]byte(network), bAddr)
	if err != nil || rb == nil {
		return err
	}
	return rb.ForEach(func(k, v []byte) error {
		addr, ok := decodeAddrKey(k)
		if !ok {
			return fmt.Errorf("boltstore: network %q: reverse key %x undecodable: %w", network, k, ipam.ErrCorrupt)
		}
		cid, ifn, _ := strings.Cut(string(v), "\x00")
		a, ok, err := t.Allocation(ipam.Key{Network: network, ContainerID: cid, IfName: ifn})
		if err != nil {
			return err
		}
		for _, ip := range a.IPs {
			if ip == addr {
				return nil
			}
		}
		return fmt.Errorf("boltstore: network %q: reverse index %s -> %s/%s (allocation present %t) does not match: %w",
			network, addr, cid, ifn, ok, ipam.ErrCorrupt)
	})
}
