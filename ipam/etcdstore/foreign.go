package etcdstore

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/medianet/medianet/ipam"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Forced reclaim without duplicates. A forced reclaim of a block that may
// still have live addresses (not marked empty) leaves a tombstone that
// keeps the old node's last published used bitmap (Claim.Used). Another
// node claims a tombstone only when no other block of the subnet is left,
// and reserves those addresses (ipam.ForeignKey) so that it never hands
// them out. If the old node was only cut off, it learns of the loss at its
// next claim or sync, stops allocating from the block, and publishes under
// foreignKey which of its addresses there are still in use; the new owner
// releases the reservations it no longer lists, all of them once it lists
// none. Addresses the old node handed out after its last sync and before
// it learnt of the loss are the one window this cannot cover: reclaim by
// force only nodes that are gone (docs/ipam-etcd.md).

// foreignAck is the value of a foreignKey.
type foreignAck struct {
	Used    []byte    `json:"used,omitempty"`
	Updated time.Time `json:"updated"`
}

// ack publishes, for block p this node lost, the addresses it still uses
// there (a write only when they changed).
func (s *Source) ack(ctx context.Context, p netip.Prefix, used []uint64) error {
	key := s.c.foreignKey(s.net.Name, p, s.node)
	want := usedBytes(used)
	resp, err := s.c.get(ctx, fmt.Sprintf("read foreign addresses of block %s", p), key)
	if err != nil {
		return err
	}
	if len(resp.Kvs) > 0 {
		var cur foreignAck
		if json.Unmarshal(resp.Kvs[0].Value, &cur) == nil && bytes.Equal(cur.Used, want) {
			return nil
		}
	}
	val, _ := json.Marshal(foreignAck{Used: want, Updated: time.Now().UTC()})
	_, err = s.c.txn(ctx, fmt.Sprintf("publish node %q's addresses in lost block %s", s.node, p), nil,
		[]clientv3.Op{clientv3.OpPut(key, string(val))}, nil)
	return err
}

// syncForeign releases the foreign reservations of this node's blocks
// that their node no longer uses, as it published them (ack). A node that
// never published keeps its reservations: it may be dead, or cut off.
func (s *Source) syncForeign(ctx context.Context, st ipam.Store) ([]netip.Addr, error) {
	type owner struct {
		block netip.Prefix
		node  string
	}
	reserved := map[owner][]netip.Addr{}
	err := st.View(ctx, func(tx ipam.Tx) error {
		return tx.ForEachAllocation(s.net.Name, func(a ipam.Allocation) error {
			node, ok := strings.CutPrefix(a.ContainerID, ipam.ForeignPrefix)
			if !ok || len(a.IPs) != 1 {
				return nil
			}
			b, held, err := tx.BlockContaining(s.net.Name, a.IPs[0])
			if err == nil && held {
				o := owner{b.Prefix, node}
				reserved[o] = append(reserved[o], a.IPs[0])
			}
			return err
		})
	})
	if err != nil || len(reserved) == 0 {
		return nil, err
	}
	var freed []netip.Addr
	for o, addrs := range reserved {
		key := s.c.foreignKey(s.net.Name, o.block, o.node)
		resp, err := s.c.get(ctx, fmt.Sprintf("read node %q's foreign addresses in block %s", o.node, o.block), key)
		if err != nil {
			return freed, err
		}
		if len(resp.Kvs) == 0 {
			continue
		}
		var ack foreignAck
		if err := json.Unmarshal(resp.Kvs[0].Value, &ack); err != nil {
			continue
		}
		still := map[netip.Addr]bool{}
		for _, a := range usedAddrs(o.block, ack.Used) {
			still[a] = true
		}
		var gone []ipam.Key
		for _, a := range addrs {
			if !still[a] {
				gone = append(gone, ipam.ForeignKey(s.net.Name, o.node, a))
				freed = append(freed, a)
			}
		}
		if err := releaseKeys(ctx, st, gone); err != nil {
			return freed, err
		}
		if len(still) == 0 {
			_, _ = s.c.txn(ctx, "delete foreign key "+key,
				[]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", resp.Kvs[0].ModRevision)},
				[]clientv3.Op{clientv3.OpDelete(key)}, nil)
		}
	}
	return freed, nil
}

func releaseKeys(ctx context.Context, st ipam.Store, keys []ipam.Key) error {
	if len(keys) == 0 {
		return nil
	}
	return st.Update(ctx, func(tx ipam.Tx) error {
		for _, k := range keys {
			if err := ipam.ReleaseTx(tx, k); err != nil {
				return err
			}
		}
		return nil
	})
}

// MarkUsage records node's used bitmap of block b (nil: no address used)
// and the empty mark that follows from it, when they changed. Reclaim
// without force frees a node's blocks only when all are marked empty; a
// forced reclaim keeps the bitmap in a tombstone.
func (c *Client) MarkUsage(ctx context.Context, net, node string, b netip.Prefix, used []byte) error {
	ctx, cancel := c.bound(ctx)
	defer cancel()
	for attempt := 0; attempt < 3; attempt++ {
		bc, ok, err := c.getClaim(ctx, net, b)
		if err != nil {
			return err
		}
		if !ok || bc.Claim.Node != node {
			return fmt.Errorf("mark block %s on network %q: not claimed by node %q: %w", b, net, node, ErrNotOwner)
		}
		empty := used == nil
		if bc.Claim.Empty == empty && bytes.Equal(bc.Claim.Used, used) {
			return nil
		}
		if empty && !bc.Claim.Empty {
			bc.Claim.EmptySince = c.now().UTC()
		}
		if !empty {
			bc.Claim.EmptySince = time.Time{}
		}
		bc.Claim.Empty, bc.Claim.Used = empty, used
		ok, err = c.putIfUnchanged(ctx, bc, fmt.Sprintf("mark usage of block %s on network %q", b, net))
		if err != nil || ok {
			return err
		}
	}
	return c.wrap(fmt.Sprintf("mark block %s on network %q", b, net), fmt.Errorf("claim kept changing"))
}

// putIfUnchanged writes bc.Claim if the key's ModRevision is still
// bc.ModRevision; it reports whether it wrote.
func (c *Client) putIfUnchanged(ctx context.Context, bc BlockClaim, op string) (bool, error) {
	key := c.blockKey(bc.Network, bc.Block)
	val, _ := json.Marshal(bc.Claim)
	resp, err := c.txn(ctx, op,
		[]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", bc.ModRevision)},
		[]clientv3.Op{clientv3.OpPut(key, string(val))}, nil)
	if err != nil {
		return false, err
	}
	return resp.Succeeded, nil
}

// claimTombstone takes over a tombstone of subnet s overlapping nothing in
// held, for node: the last resort when every other block is claimed. It
// returns the block and the old node's addresses to reserve in it.
func (c *Client) claimTombstone(ctx context.Context, n Network, node string, s Subnet, held ipam.Held) (netip.Prefix, ipam.ForeignAddrs, error) {
	claims, _, err := c.claimsAt(ctx, n.Name)
	if err != nil {
		return netip.Prefix{}, ipam.ForeignAddrs{}, err
	}
	for _, bc := range claims {
		if !bc.Claim.IsTombstone() || !s.Prefix.Contains(bc.Block.Addr()) || held.Overlaps(bc.Block) {
			continue
		}
		old := bc.Claim
		bc.Claim = Claim{Node: node, Claimed: time.Now().UTC()}
		ok, err := c.putIfUnchanged(ctx, bc, fmt.Sprintf("claim reclaimed block %s for node %q on network %q", bc.Block, node, n.Name))
		if err != nil {
			return netip.Prefix{}, ipam.ForeignAddrs{}, err
		}
		if ok {
			return bc.Block, ipam.ForeignAddrs{Block: bc.Block, Node: old.ReclaimedFrom, Addrs: usedAddrs(bc.Block, old.Used)}, nil
		}
	}
	return netip.Prefix{}, ipam.ForeignAddrs{}, fmt.Errorf("network %q subnet %s: every block is claimed or held: %w", n.Name, s.Prefix, ErrExhausted)
}

// retake gives node back its own tombstone bc (unchanged since read).
func (c *Client) retake(ctx context.Context, bc BlockClaim, node string) (bool, error) {
	used := bc.Claim.Used
	bc.Claim = Claim{Node: node, Claimed: c.now().UTC(), Used: used, Empty: used == nil}
	if used == nil {
		bc.Claim.EmptySince = bc.Claim.Claimed
	}
	return c.putIfUnchanged(ctx, bc, fmt.Sprintf("take back block %s reclaimed from node %q on network %q", bc.Block, node, bc.Network))
}
