package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/medianet/medianet/ipam"
)

// Source is one node's ipam.BlockSource for one network, backed by claims
// in etcd. The allocator calls it only when the node's held blocks are
// full, outside its store transaction.
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
}

var _ ipam.BlockSource = (*Source)(nil)

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
	return &Source{c: c, net: n, node: cfg.Node, st: st}, nil
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
// (locally) for a free address in the held blocks of subnet and, if there
// is one, returns an error wrapping ipam.ErrExhausted and ErrHeldNotFull,
// on which the allocator wraps around and reuses it.
func (s *Source) Next(ctx context.Context, subnet netip.Prefix, bits int, held map[netip.Prefix]bool) (netip.Prefix, error) {
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
	b, err := s.c.ClaimNext(ctx, s.net, s.node, subnet, func(p netip.Prefix) bool { return held[p] })
	return b, mapErr(err)
}

// Containing implements ipam.BlockSource: the block holding addr, claimed
// for this node if it is free. Another node's block is ipam.ErrOutOfRange.
func (s *Source) Containing(ctx context.Context, subnet netip.Prefix, bits int, addr netip.Addr) (netip.Prefix, error) {
	if err := s.checkBits(subnet, bits); err != nil {
		return netip.Prefix{}, err
	}
	if !subnet.Contains(addr) {
		return netip.Prefix{}, fmt.Errorf("%s is outside subnet %s: %w", addr, subnet, ipam.ErrOutOfRange)
	}
	b := netip.PrefixFrom(addr, bits).Masked()
	if e, ok := s.net.excludedBy(b); ok {
		return netip.Prefix{}, fmt.Errorf("%s lies in excluded %s: %w", addr, e, ipam.ErrOutOfRange)
	}
	return b, mapErr(s.c.ClaimBlock(ctx, s.net, s.node, b))
}

// Ranges implements ipam.BlockSource: the subnet, from which blocks are
// claimed on demand.
func (s *Source) Ranges(subnet netip.Prefix) []netip.Prefix {
	if _, ok := s.net.subnet(subnet.Masked()); ok {
		return []netip.Prefix{subnet.Masked()}
	}
	return nil
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

// freeInHeld counts free addresses in the held blocks of subnet.
func freeInHeld(ctx context.Context, st ipam.Store, network string, subnet netip.Prefix) (int, error) {
	free := 0
	err := st.View(ctx, func(tx ipam.Tx) error {
		return tx.ForEachBlock(network, func(b ipam.Block) error {
			if subnet.Contains(b.Prefix.Addr()) {
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
