package ipam

import (
	"net/netip"
)

// pick takes the next free address of subnet i round-robin: after the
// cursor in its block, then in later held blocks, then in a block just
// obtained from the source; only when the source is exhausted does it wrap
// to the start of the subnet.
func (a *Allocator) pick(tx Tx, sub netip.Prefix, r *round, i int) (netip.Addr, error) {
	netw := a.cfg.Network
	b, off, ok, err := a.findFree(tx, sub, r.pending[i])
	if err != nil {
		return netip.Addr{}, err
	}
	if !ok && r.wrap[i] {
		b, ok, err = tx.NextAvailable(netw, sub, sub.Addr())
		if err != nil {
			return netip.Addr{}, err
		}
		if !ok && r.srcErr[i] != nil {
			return netip.Addr{}, r.srcErr[i]
		}
		if !ok {
			return netip.Addr{}, a.exhausted(sub)
		}
		off, _ = b.NextFree(0)
	}
	if !ok {
		r.needIdx, r.needFor = i, netip.Addr{}
		return netip.Addr{}, errNeedBlock
	}
	b.SetUsed(off, true)
	ip := b.Addr(off)
	if err := tx.PutBlock(netw, b); err != nil {
		return ip, err
	}
	return ip, tx.PutCursor(netw, sub, ip)
}

// findFree looks for a free address past the cursor, without wrapping.
func (a *Allocator) findFree(tx Tx, sub, pending netip.Prefix) (Block, int, bool, error) {
	netw := a.cfg.Network
	start := sub.Addr()
	if cur, ok, err := tx.Cursor(netw, sub); err != nil {
		return Block{}, 0, false, err
	} else if ok {
		start = cur.Next()
	}
	if sub.Contains(start) {
		b, ok, err := tx.BlockContaining(netw, start)
		if err != nil {
			return Block{}, 0, false, err
		}
		if ok && b.Usable() {
			from, _ := b.Offset(start)
			if off, ok := b.NextFree(from); ok {
				return b, off, true, nil
			}
		}
		b, ok, err = tx.NextAvailable(netw, sub, start)
		if err != nil || ok {
			off, _ := b.NextFree(0)
			return b, off, ok, err
		}
	}
	if pending.IsValid() {
		b, ok, err := tx.BlockContaining(netw, pending.Addr())
		if err != nil {
			return Block{}, 0, false, err
		}
		if ok && b.Usable() {
			off, found := b.NextFree(0)
			return b, off, found, nil
		}
	}
	return Block{}, 0, false, nil
}
