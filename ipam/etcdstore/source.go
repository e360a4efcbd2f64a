package etcdstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/medianet/medianet/ipam"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Source is one node's ipam.BlockSource for one network, backed by claims
// in etcd. The allocator calls it only when the node's held blocks are
// full, outside its store transaction (the node's store lock is free while
// it talks to etcd).
//
// Errors keep the etcdstore sentinels and add the ipam ones where they
// mean the same: ErrExhausted also wraps ipam.ErrExhausted, ErrConfig and
// ErrConfigMismatch also wrap ipam.ErrConfig, ErrNotOwner from Containing
// also wraps ipam.ErrOutOfRange. ErrUnavailable and ErrAuth stay as they
// are (map them to "try again later" and to a configuration error).
type Source struct {
	c    *Client
	net  Network
	node string
	st   ipam.Store // optional: lets Next refuse to claim while held blocks have room
	// cfg is the node's configuration of the network (reserved
	// addresses of blocks the sync records).
	cfg ipam.Config
	// sticky: how long the network keeps a workload's addresses
	// (ipam.Config.Sticky), across nodes too (sticky.go); 0 for none.
	sticky time.Duration

	mu      sync.Mutex
	claims  int                 // blocks obtained (claimed, adopted, taken over)
	failed  int                 // claims that failed (etcd, exhaustion, races)
	lost    []ipam.LostBlock    // found while claiming, for TakeLost
	foreign []ipam.ForeignAddrs // of tombstones taken over, for TakeForeign
}

var (
	_ ipam.BlockSource     = (*Source)(nil)
	_ ipam.LossReporter    = (*Source)(nil)
	_ ipam.ForeignReporter = (*Source)(nil)
)

// NetworkFromConfig returns the Network an ipam.Config describes: its
// name, its subnets with the block length BlockBits gives each, and its
// Exclude list.
func NetworkFromConfig(cfg *ipam.Config) Network {
	n := Network{Name: cfg.Network, Exclude: cfg.Exclude}
	for _, s := range cfg.Subnets {
		n.Subnets = append(n.Subnets, Subnet{Prefix: s.Prefix.Masked(), BlockBits: cfg.BlockBits(s.Prefix)})
	}
	return n
}

// NewSource returns the etcd block source of cfg.Node on cfg.Network. It
// does not contact etcd. st, the node's store (the one the allocator
// uses), may be nil; when given, Next claims only when every held block of
// the subnet is full (see Next).
func NewSource(c *Client, cfg *ipam.Config, st ipam.Store) (*Source, error) {
	n := NetworkFromConfig(cfg)
	if err := n.validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", err, ipam.ErrConfig)
	}
	if cfg.Node == "" {
		return nil, fmt.Errorf("network %q: node name is empty: %w: %w", cfg.Network, ErrConfig, ipam.ErrConfig)
	}
	return &Source{c: c, net: n, node: cfg.Node, st: st, sticky: cfg.Sticky, cfg: *cfg}, nil
}

// Network returns the network the source claims in.
func (s *Source) Network() Network { return s.net }

// Node returns the node the source claims for.
func (s *Source) Node() string { return s.node }

// Next implements ipam.BlockSource: it claims a block of subnet in etcd.
//
// The allocator asks for a block when none is free past its round-robin
// cursor. In cluster mode the node must not claim while it has free
// addresses behind the cursor (released ones), or churn would make it
// claim the whole subnet over time. So, with a store, Next first looks
// (locally) for a free address in the usable held blocks of subnet and,
// if there is one, returns an error wrapping ipam.ErrExhausted and
// ErrHeldNotFull, on which the allocator wraps around and reuses it.
//
// Before claiming, Next reads the claims of the blocks the node holds (one
// round trip): a held block now claimed by another node is lost, and the
// allocator stops using it (TakeLost).
func (s *Source) Next(ctx context.Context, subnet netip.Prefix, bits int, held ipam.Held) (netip.Prefix, error) {
	if err := s.checkBits(subnet, bits); err != nil {
		return netip.Prefix{}, err
	}
	if s.st != nil {
		free, err := freeInHeld(ctx, s.st, s.net.Name, subnet)
		if err != nil {
			return netip.Prefix{}, err
		}
		if free > 0 {
			return netip.Prefix{}, fmt.Errorf("network %q: held blocks of %s have %d free addresses: %w: %w",
				s.net.Name, subnet, free, ErrHeldNotFull, ipam.ErrExhausted)
		}
	}
	if err := s.verifyHeld(ctx, held); err != nil {
		return netip.Prefix{}, mapErr(err)
	}
	b, err := s.c.ClaimNext(ctx, s.net, s.node, subnet, held)
	defer func() { s.count(err) }()
	var found []ipam.ForeignAddrs
	if errors.Is(err, ErrExhausted) {
		sub, _ := s.net.subnet(subnet.Masked())
		var f ipam.ForeignAddrs
		if b, f, err = s.c.claimTombstone(ctx, s.net, s.node, sub, held); err == nil {
			found = append(found, f)
		}
	}
	if err == nil {
		// Addresses of the block that records bind to other nodes (a
		// workload moved away from a node since reclaimed by force):
		// theirs, whoever claims the block. Unread, the claim is left
		// to the sync's adoption, which reads them too.
		var bound map[netip.Prefix][]ipam.ForeignAddrs
		if bound, err = s.boundElsewhere(ctx, []netip.Prefix{b}); err == nil {
			found = append(found, bound[b]...)
			s.mu.Lock()
			s.foreign = append(s.foreign, found...)
			s.mu.Unlock()
		}
	}
	return b, mapErr(err)
}

// boundElsewhere returns, per block, the addresses in it that sticky
// records bind to other nodes, as moved reservations to make.
func (s *Source) boundElsewhere(ctx context.Context, blocks []netip.Prefix) (map[netip.Prefix][]ipam.ForeignAddrs, error) {
	resp, err := s.c.get(ctx, "list sticky records of network "+s.net.Name, s.c.stickyPrefix(s.net.Name), clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	out := map[netip.Prefix][]ipam.ForeignAddrs{}
	for _, kv := range resp.Kvs {
		var rec stickyRecord
		if json.Unmarshal(kv.Value, &rec) != nil || rec.Node == s.node {
			continue
		}
		for _, b := range blocks {
			var in []netip.Addr
			for _, ip := range rec.IPs {
				if b.Contains(ip) {
					in = append(in, ip)
				}
			}
			if len(in) > 0 {
				out[b] = append(out[b], ipam.ForeignAddrs{Block: b, Node: rec.Node, Addrs: in, Moved: true})
			}
		}
	}
	return out, nil
}

// TakeForeign implements ipam.ForeignReporter: the addresses to reserve
// in tombstones Next took over since the last call.
func (s *Source) TakeForeign() []ipam.ForeignAddrs {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.foreign
	s.foreign = nil
	return out
}

// Containing implements ipam.BlockSource: the block holding addr (of
// length bits, or longer where that would overlap a held block), claimed
// for this node if it is free. Another node's block is ipam.ErrOutOfRange.
func (s *Source) Containing(ctx context.Context, subnet netip.Prefix, bits int, addr netip.Addr, held ipam.Held) (netip.Prefix, error) {
	if err := s.checkBits(subnet, bits); err != nil {
		return netip.Prefix{}, err
	}
	if !subnet.Contains(addr) {
		return netip.Prefix{}, fmt.Errorf("%s is outside subnet %s: %w", addr, subnet, ipam.ErrOutOfRange)
	}
	b, err := ipam.ClearBlock(addr, bits, held)
	if err != nil {
		return netip.Prefix{}, err
	}
	if e, ok := s.net.excludedBy(b); ok {
		return netip.Prefix{}, fmt.Errorf("%s lies in excluded %s: %w", addr, e, ipam.ErrOutOfRange)
	}
	err = s.c.ClaimBlock(ctx, s.net, s.node, b)
	s.count(err)
	return b, mapErr(err)
}

func (s *Source) count(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.failed++
	} else {
		s.claims++
	}
}

// ClaimStats returns the blocks this source obtained, the claims that
// failed, and the etcd round trips that failed, for metrics.
func (s *Source) ClaimStats() (claims, failed, etcdErrors int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.claims, s.failed, int(s.c.Failed())
}

// Available implements ipam.BlockSource without writing: one keys-only
// read of the network's claims, then the picker's walk over them.
func (s *Source) Available(ctx context.Context, subnet netip.Prefix, bits int, held ipam.Held) error {
	if err := s.checkBits(subnet, bits); err != nil {
		return err
	}
	sub, _ := s.net.subnet(subnet.Masked())
	ctx, cancel := s.c.bound(ctx)
	defer cancel()
	claims, _, err := s.c.claimsAt(ctx, s.net.Name)
	if err != nil {
		return err
	}
	if _, _, err := pickMixed(s.net, s.node, sub, held, netip.Prefix{}, claims); err != nil {
		return mapErr(err)
	}
	return nil
}

// TakeLost implements ipam.LossReporter: the held blocks Next found
// claimed by another node since the last call.
func (s *Source) TakeLost() []ipam.LostBlock {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.lost
	s.lost = nil
	return out
}

// verifyHeld reads the claims of the held blocks in one transaction and
// records those claimed by another node as lost. A held block whose claim
// vanished is left to SyncIdle, which claims it again.
func (s *Source) verifyHeld(ctx context.Context, held ipam.Held) error {
	if held.Len() == 0 {
		return nil
	}
	ctx, cancel := s.c.bound(ctx)
	defer cancel()
	var gets []clientv3.Op
	for _, p := range held.All() {
		gets = append(gets, clientv3.OpGet(s.c.blockKey(s.net.Name, p)))
	}
	resp, err := s.c.txn(ctx, fmt.Sprintf("read claims of node %q's blocks on network %q", s.node, s.net.Name), nil, gets, nil)
	if err != nil {
		return err
	}
	for i, p := range held.All() {
		kvs := resp.Responses[i].GetResponseRange().Kvs
		if len(kvs) == 0 {
			continue
		}
		bc, err := decodeClaim(s.net.Name, p, kvs[0])
		if err != nil || bc.Claim.Node == s.node {
			continue
		}
		if bc.Claim.IsTombstone() && bc.Claim.ReclaimedFrom == s.node {
			if ok, err := s.c.retake(ctx, bc, s.node); err != nil || ok {
				if err != nil {
					return err
				}
				continue // reclaimed by force, untouched since: ours again
			}
		}
		s.addLost(p, bc.Claim)
	}
	return nil
}

func (s *Source) addLost(p netip.Prefix, cl Claim) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lost = append(s.lost, ipam.LostBlock{Prefix: p, Reason: lostReason(p, cl)})
}

// lostReason says who took block p from this node, for Block.Lost.
func lostReason(p netip.Prefix, cl Claim) string {
	if cl.Node == "" {
		return fmt.Sprintf("block %s was reclaimed from this node in etcd", p)
	}
	return fmt.Sprintf("block %s is claimed by node %q in etcd", p, cl.Node)
}

func (s *Source) checkBits(subnet netip.Prefix, bits int) error {
	sub, ok := s.net.subnet(subnet.Masked())
	if !ok || sub.BlockBits != bits {
		return fmt.Errorf("network %q: etcd source has no subnet %s with /%d blocks: %w", s.net.Name, subnet, bits, ipam.ErrConfig)
	}
	return nil
}

// mapErr adds the ipam sentinel that means the same as an etcdstore one.
func mapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrExhausted):
		return fmt.Errorf("%w: %w", err, ipam.ErrExhausted)
	case errors.Is(err, ErrConfigMismatch), errors.Is(err, ErrConfig):
		return fmt.Errorf("%w: %w", err, ipam.ErrConfig)
	case errors.Is(err, ErrNotOwner):
		return fmt.Errorf("%w: %w", err, ipam.ErrOutOfRange)
	}
	return err
}

// freeInHeld counts free addresses in the usable held blocks of subnet.
func freeInHeld(ctx context.Context, st ipam.Store, network string, subnet netip.Prefix) (int, error) {
	free := 0
	err := st.View(ctx, func(tx ipam.Tx) error {
		return tx.ForEachBlock(network, func(b ipam.Block) error {
			if subnet.Contains(b.Prefix.Addr()) && b.Usable() {
				free += b.Free()
			}
			return nil
		})
	})
	if err != nil {
		return 0, fmt.Errorf("network %q: read held blocks: %w", network, err)
	}
	return free, nil
}

// Ranges implements ipam.BlockSource: the subnet, from which blocks are
// claimed on demand.
func (s *Source) Ranges(subnet netip.Prefix) []netip.Prefix {
	if _, ok := s.net.subnet(subnet.Masked()); ok {
		return []netip.Prefix{subnet.Masked()}
	}
	return nil
}
