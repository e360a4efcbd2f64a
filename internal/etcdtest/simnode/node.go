// Package simnode simulates the nodes of a cluster that take their IPAM
// blocks from etcd: each Node has its own name, data directory and bbolt
// store, and drives the real allocator (ipam.NewAllocator over
// boltstore, with etcdstore's block source and a real etcdstore client)
// exactly as one CNI plugin process does per ADD or DEL: open the store,
// make a fresh etcd client (which connects only if it must claim), run
// the verb, close both. CheckCluster verifies the cluster-wide invariants
// afterwards. test/etcd and test/scale drive it against internal/etcdtest
// servers and clusters.
//
// This file is the one to adapt when the allocator's or the block
// source's API changes.
package simnode

import (
	"context"
	"fmt"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/medianet/medianet/ipam"
	"github.com/medianet/medianet/ipam/boltstore"
	"github.com/medianet/medianet/ipam/etcdstore"
)

// Node is one simulated node.
type Node struct {
	Name string
	Dir  string
	Cfg  ipam.Config
	Etcd *etcdstore.Config // nil: single-node mode (the whole subnet)

	// Writes counts etcd writes made by this node's clients.
	Writes atomic.Uint64
	// Contacts counts operations that contacted etcd.
	Contacts atomic.Uint64
}

// Trace is what one operation cost in etcd.
type Trace struct {
	// Requests and Writes are the etcd round trips and writes it made.
	Requests, Writes uint64
	// Claims counts the block source's calls that contacted etcd (a
	// claim, with its conflicts and retries); ClaimTime is their total
	// duration.
	Claims    int
	ClaimTime time.Duration
	// Emptied: a DEL left its block with no address in use (the plugin
	// then asks the node agent for a sync, cni.Stats.Sync).
	Emptied bool
}

// session is what one plugin process has open.
type session struct {
	st  *boltstore.Store
	cli *etcdstore.Client
	src *timedSource
	a   *ipam.Allocator
}

// open opens the node's store and, in cluster mode, an etcd client and
// source over it.
func (n *Node) open(ctx context.Context) (*session, error) {
	st, err := boltstore.Open(ctx, n.Dir, boltstore.Options{Timeout: 30 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("node %s: open store: %w", n.Name, err)
	}
	s := &session{st: st}
	var src ipam.BlockSource
	if n.Etcd != nil {
		if s.cli, err = etcdstore.New(*n.Etcd); err != nil {
			st.Close()
			return nil, err
		}
		es, err := etcdstore.NewSource(s.cli, &n.Cfg, st)
		if err != nil {
			n.close(s)
			return nil, err
		}
		s.src = &timedSource{Source: es, cli: s.cli}
		src = s.src
	}
	if s.a, err = ipam.NewAllocator(n.Cfg, st, src); err != nil {
		n.close(s)
		return nil, err
	}
	return s, nil
}

// close closes what open opened and returns the session's etcd cost.
func (n *Node) close(s *session) Trace {
	var tr Trace
	if s.cli != nil {
		tr = Trace{Requests: s.cli.Requests(), Writes: s.cli.Writes()}
		if s.src != nil {
			tr.Claims, tr.ClaimTime = s.src.claims, s.src.took
		}
		n.Writes.Add(tr.Writes)
		if tr.Requests > 0 {
			n.Contacts.Add(1)
		}
		_ = s.cli.Close()
	}
	_ = s.st.Close()
	return tr
}

// Allocate runs one ADD of container cid (interface eth0).
func (n *Node) Allocate(ctx context.Context, cid string) (ipam.Allocation, error) {
	a, _, err := n.Add(ctx, cid)
	return a, err
}

// Add is Allocate, also returning what the ADD cost in etcd.
func (n *Node) Add(ctx context.Context, cid string) (ipam.Allocation, Trace, error) {
	s, err := n.open(ctx)
	if err != nil {
		return ipam.Allocation{}, Trace{}, err
	}
	a, err := s.a.Allocate(ctx, ipam.Request{ContainerID: cid, IfName: "eth0"})
	return a, n.close(s), err
}

// Del runs one DEL of container cid: it releases the addresses (a DEL
// never contacts etcd; marks and give-backs wait for Sync).
func (n *Node) Del(ctx context.Context, cid string) (Trace, error) {
	s, err := n.open(ctx)
	if err != nil {
		return Trace{}, err
	}
	alloc, _, err := s.a.Release(ctx, cid, "eth0")
	emptied := false
	if err == nil {
		emptied = ipam.Emptied(ctx, s.st, n.Cfg.Network, alloc.IPs)
	}
	tr := n.close(s)
	tr.Emptied = emptied
	return tr, err
}

// Sync runs the node's sync with etcd (etcdstore.Source.SyncIdle, as CNI
// GC and `medianetctl ipam check` do): usage marks published, blocks
// empty for their idle time given back, lost blocks recorded.
func (n *Node) Sync(ctx context.Context) (etcdstore.SyncResult, Trace, error) {
	s, err := n.open(ctx)
	if err != nil {
		return etcdstore.SyncResult{}, Trace{}, err
	}
	if s.src == nil {
		return etcdstore.SyncResult{}, n.close(s), fmt.Errorf("node %s: sync: not in cluster mode", n.Name)
	}
	res, err := s.src.SyncIdle(ctx, s.st, time.Now())
	return res, n.close(s), err
}

// timedSource times the etcd source's claims.
type timedSource struct {
	*etcdstore.Source
	cli    *etcdstore.Client
	claims int
	took   time.Duration
}

// Next implements ipam.BlockSource, timing the calls that reach etcd.
func (t *timedSource) Next(ctx context.Context, subnet netip.Prefix, bits int, held ipam.Held) (netip.Prefix, error) {
	before, start := t.cli.Requests(), time.Now()
	p, err := t.Source.Next(ctx, subnet, bits, held)
	if t.cli.Requests() != before {
		t.claims++
		t.took += time.Since(start)
	}
	return p, err
}
