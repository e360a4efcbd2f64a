package boltstore

import (
	"net/netip"

	"github.com/medianet/medianet/ipam"
	bolt "go.etcd.io/bbolt"
)

// BlockContaining implements ipam.Tx: the held block with the greatest
// start address not above addr, if it contains addr (blocks never overlap).
func (t *tx) BlockContaining(network string, addr netip.Addr) (ipam.Block, bool, error) {
	bb, err := t.net([]byte(network), bBlocks)
	if err != nil || bb == nil {
		return ipam.Block{}, false, err
	}
	c := bb.Cursor()
	// Keys are family, address, length: the block starting at or before
	// addr is the last key before addr+0xff.
	k, _ := c.Seek(append(addrKey(addr), 0xff))
	if k == nil {
		k, _ = c.Last()
	} else {
		k, _ = c.Prev()
	}
	if k == nil {
		return ipam.Block{}, false, nil
	}
	p, ok := decodeBlockKey(k)
	if !ok || !p.Contains(addr) {
		return ipam.Block{}, false, nil
	}
	b, err := decodeBlock(k, bb.Get(k))
	return b, err == nil, err
}

// NextAvailable implements ipam.Tx.
func (t *tx) NextAvailable(network string, within netip.Prefix, from netip.Addr) (ipam.Block, bool, error) {
	av, err := t.net([]byte(network), bAvail)
	if err != nil || av == nil {
		return ipam.Block{}, false, err
	}
	c := av.Cursor()
	k, _ := c.Seek(addrKey(from))
	if k == nil {
		return ipam.Block{}, false, nil
	}
	p, ok := decodeBlockKey(k)
	if !ok || !within.Contains(p.Addr()) {
		return ipam.Block{}, false, nil
	}
	bb, err := t.net([]byte(network), bBlocks)
	if err != nil {
		return ipam.Block{}, false, err
	}
	b, err := decodeBlock(k, bb.Get(k))
	return b, err == nil, err
}

// ForEachBlock implements ipam.Tx.
func (t *tx) ForEachBlock(network string, fn func(ipam.Block) error) error {
	bb, err := t.net([]byte(network), bBlocks)
	if err != nil || bb == nil {
		return err
	}
	return bb.ForEach(func(k, v []byte) error {
		b, err := decodeBlock(k, v)
		if err != nil {
			return err
		}
		return fn(b)
	})
}

// blockBuckets returns network's held blocks and their avail index, which
// every change to a block updates together.
func (t *tx) blockBuckets(network string) (blocks, avail *bolt.Bucket, err error) {
	if blocks, err = t.net([]byte(network), bBlocks); err != nil {
		return nil, nil, err
	}
	if avail, err = t.net([]byte(network), bAvail); err != nil {
		return nil, nil, err
	}
	return blocks, avail, nil
}

// PutBlock implements ipam.Tx, keeping the avail index in step.
func (t *tx) PutBlock(network string, b ipam.Block) error {
	bb, av, err := t.blockBuckets(network)
	if err != nil {
		return err
	}
	k := blockKey(b.Prefix)
	if err := bb.Put(k, encodeBlock(b)); err != nil {
		return err
	}
	if b.Free() > 0 && b.Usable() {
		return av.Put(k, nil)
	}
	return av.Delete(k)
}

// Cursor implements ipam.Tx.
func (t *tx) Cursor(network string, subnet netip.Prefix) (netip.Addr, bool, error) {
	cb, err := t.net([]byte(network), bCursor)
	if err != nil || cb == nil {
		return netip.Addr{}, false, err
	}
	v := cb.Get([]byte(subnet.String()))
	if v == nil {
		return netip.Addr{}, false, nil
	}
	var a netip.Addr
	if err := a.UnmarshalBinary(v); err != nil {
		return netip.Addr{}, false, nil // a bad cursor only costs round-robin order
	}
	return a, true, nil
}

// PutCursor implements ipam.Tx.
func (t *tx) PutCursor(network string, subnet netip.Prefix, a netip.Addr) error {
	cb, err := t.net([]byte(network), bCursor)
	if err != nil {
		return err
	}
	v, _ := a.MarshalBinary()
	return cb.Put([]byte(subnet.String()), v)
}

// DeleteBlock implements ipam.Tx.
func (t *tx) DeleteBlock(network string, p netip.Prefix) error {
	bb, av, err := t.blockBuckets(network)
	if err != nil {
		return err
	}
	if err := bb.Delete(blockKey(p)); err != nil {
		return err
	}
	return av.Delete(blockKey(p))
}
