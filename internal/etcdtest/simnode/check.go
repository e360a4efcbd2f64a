package simnode

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/medianet/medianet/ipam"
	"github.com/medianet/medianet/ipam/boltstore"
	"github.com/medianet/medianet/ipam/etcdstore"
)

// view runs fn over the node's store, opened for it.
func (n *Node) view(ctx context.Context, fn func(st ipam.Store) error) error {
	st, err := boltstore.Open(ctx, n.Dir, boltstore.Options{Timeout: 30 * time.Second})
	if err != nil {
		return fmt.Errorf("node %s: open store: %w", n.Name, err)
	}
	defer st.Close()
	return fn(st)
}

// Blocks returns the node's held blocks from its store.
func (n *Node) Blocks(ctx context.Context) ([]ipam.Block, error) {
	var out []ipam.Block
	err := n.view(ctx, func(st ipam.Store) error {
		return st.View(ctx, func(tx ipam.Tx) error {
			return tx.ForEachBlock(n.Cfg.Network, func(b ipam.Block) error {
				out = append(out, b)
				return nil
			})
		})
	})
	return out, err
}

// FreeInHeld returns the number of free addresses in the node's held blocks.
func (n *Node) FreeInHeld(ctx context.Context) (int, error) {
	bs, err := n.Blocks(ctx)
	free := 0
	for _, b := range bs {
		free += b.Free()
	}
	return free, err
}

// Allocations lists the node's allocations.
func (n *Node) Allocations(ctx context.Context) ([]ipam.Allocation, error) {
	var out []ipam.Allocation
	err := n.view(ctx, func(st ipam.Store) error {
		var err error
		out, err = ipam.List(ctx, st, n.Cfg.Network)
		return err
	})
	return out, err
}

// heldBlock is a block and the node holding it.
type heldBlock struct {
	p    netip.Prefix
	node string
}

// CheckCluster verifies the invariants across nodes: no address handed
// out twice, no two nodes' blocks overlapping, every held block claimed in
// etcd by its holder, every address inside one of its node's blocks. It
// returns the number of allocations.
func CheckCluster(ctx context.Context, nodes []*Node, c *etcdstore.Client) (int, error) {
	claims, err := c.Claims(ctx, nodes[0].Cfg.Network, "")
	if err != nil {
		return 0, err
	}
	owner := map[netip.Prefix]string{}
	for _, bc := range claims {
		owner[bc.Block] = bc.Claim.Node
	}
	addrOwner := map[netip.Addr]string{}
	var held []heldBlock
	var errs []error
	total := 0
	for _, n := range nodes {
		bs, err := n.Blocks(ctx)
		if err != nil {
			return 0, err
		}
		for _, b := range bs {
			held = append(held, heldBlock{b.Prefix, n.Name})
			if owner[b.Prefix] != n.Name {
				errs = append(errs, fmt.Errorf("block %s held by %s, claimed in etcd by %q", b.Prefix, n.Name, owner[b.Prefix]))
			}
		}
		as, err := n.Allocations(ctx)
		if err != nil {
			return 0, err
		}
		for _, a := range as {
			total++
			for _, ip := range a.IPs {
				if o, dup := addrOwner[ip]; dup {
					errs = append(errs, fmt.Errorf("address %s handed out by %s and %s", ip, o, n.Name))
				}
				addrOwner[ip] = n.Name
				if !inBlocks(ip, bs) {
					errs = append(errs, fmt.Errorf("address %s of %s is outside its blocks", ip, n.Name))
				}
			}
		}
	}
	errs = append(errs, overlaps(held)...)
	return total, errors.Join(errs...)
}

// overlaps reports held blocks that share addresses with their neighbour
// in address order. Prefixes nest or are disjoint, so when any two
// blocks overlap, some neighbours do: at least one error is reported.
func overlaps(held []heldBlock) []error {
	slices.SortFunc(held, func(a, b heldBlock) int {
		if c := a.p.Addr().Compare(b.p.Addr()); c != 0 {
			return c
		}
		return a.p.Bits() - b.p.Bits()
	})
	var errs []error
	for i := 1; i < len(held); i++ {
		prev, cur := held[i-1], held[i]
		if prev.p.Overlaps(cur.p) {
			errs = append(errs, fmt.Errorf("block %s of %s overlaps block %s of %s", prev.p, prev.node, cur.p, cur.node))
		}
	}
	return errs
}

func inBlocks(ip netip.Addr, bs []ipam.Block) bool {
	for _, b := range bs {
		if b.Prefix.Contains(ip) {
			return true
		}
	}
	return false
}
