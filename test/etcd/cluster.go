// Package etcd holds the end-to-end tests of cluster IPAM: simulated nodes,
// each with its own data directory, bbolt store and node name, allocating
// through ipam.Allocator with blocks claimed in a real etcd server
// (internal/etcdtest) that the tests stop and restart.
package etcd

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/medianet/medianet/ipam"
	"github.com/medianet/medianet/ipam/boltstore"
	"github.com/medianet/medianet/ipam/etcdstore"
)

// Node is one simulated node. Every Allocate opens the store and makes a
// fresh etcd client, as a CNI plugin process does per ADD.
type Node struct {
	Name string
	Dir  string
	Cfg  ipam.Config
	Etcd *etcdstore.Config // nil: single-node mode (the whole subnet)

	// Writes counts etcd writes made by this node's clients.
	Writes atomic.Uint64
	// Contacts counts allocations that contacted etcd.
	Contacts atomic.Uint64
}

// Allocate runs one ADD: open the store, allocate, close.
func (n *Node) Allocate(ctx context.Context, cid string) (ipam.Allocation, error) {
	st, err := boltstore.Open(ctx, n.Dir, boltstore.Options{Timeout: 30 * time.Second})
	if err != nil {
		return ipam.Allocation{}, fmt.Errorf("node %s: open store: %w", n.Name, err)
	}
	defer st.Close()
	var src ipam.BlockSource
	var cli *etcdstore.Client
	if n.Etcd != nil {
		cli, err = etcdstore.New(*n.Etcd)
		if err != nil {
			return ipam.Allocation{}, err
		}
		defer func() {
			n.Writes.Add(cli.Writes())
			if cli.Requests() > 0 {
				n.Contacts.Add(1)
			}
			_ = cli.Close()
		}()
		if src, err = etcdstore.NewSource(cli, &n.Cfg, st); err != nil {
			return ipam.Allocation{}, err
		}
	}
	a, err := ipam.NewAllocator(n.Cfg, st, src)
	if err != nil {
		return ipam.Allocation{}, err
	}
	return a.Allocate(ctx, ipam.Request{ContainerID: cid, IfName: "eth0"})
}

// Blocks returns the node's held blocks from its store.
func (n *Node) Blocks(ctx context.Context) ([]ipam.Block, error) {
	st, err := boltstore.Open(ctx, n.Dir, boltstore.Options{Timeout: 30 * time.Second})
	if err != nil {
		return nil, err
	}
	defer st.Close()
	var out []ipam.Block
	err = st.View(ctx, func(tx ipam.Tx) error {
		return tx.ForEachBlock(n.Cfg.Network, func(b ipam.Block) error {
			out = append(out, b)
			return nil
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
	st, err := boltstore.Open(ctx, n.Dir, boltstore.Options{Timeout: 30 * time.Second})
	if err != nil {
		return nil, err
	}
	defer st.Close()
	return ipam.List(ctx, st, n.Cfg.Network)
}

// CheckCluster verifies the invariants across nodes: no address handed
// out twice, no block held by two nodes, every held block claimed in etcd
// by its holder, every address inside one of its node's blocks. It
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
	blockHolder := map[netip.Prefix]string{}
	var errs []error
	total := 0
	for _, n := range nodes {
		bs, err := n.Blocks(ctx)
		if err != nil {
			return 0, err
		}
		for _, b := range bs {
			if h, dup := blockHolder[b.Prefix]; dup {
				errs = append(errs, fmt.Errorf("block %s held by %s and %s", b.Prefix, h, n.Name))
			}
			blockHolder[b.Prefix] = n.Name
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
	return total, errors.Join(errs...)
}

func inBlocks(ip netip.Addr, bs []ipam.Block) bool {
	for _, b := range bs {
		if b.Prefix.Contains(ip) {
			return true
		}
	}
	return false
}

func ipamPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }
