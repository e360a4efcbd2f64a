package kubestore

import (
	"context"
	"fmt"
	"net/netip"
	"sync"

	"github.com/medianet/medianet/ipam"
)

// Source is one node's ipam.BlockSource for one network, backed by
// IPAMBlock objects. The allocator calls it only when the node's held
// blocks are full, outside its store transaction.
type Source struct {
	c    *Client
	net  Network
	node string
	st   ipam.Store // optional: Next refuses to claim while held blocks have room
	cfg  ipam.Config

	mu      sync.Mutex
	checked bool   // the network's IPAMNetwork matched once
	uid     string // the node's Node UID, "" when it has none
	uidRead bool
	claims  int
	failed  int
	lost    []ipam.LostBlock
	foreign []ipam.ForeignAddrs // bound elsewhere in blocks just claimed (sticky_sync.go)
}

var (
	_ ipam.BlockSource  = (*Source)(nil)
	_ ipam.LossReporter = (*Source)(nil)
)

// NewSource returns the block source of cfg.Node on cfg.Network. It does
// not contact the API server. With cfg.Sticky, workloads keep their
// addresses across nodes through IPAMSticky records (sticky.go).
func NewSource(c *Client, cfg *ipam.Config, st ipam.Store) (*Source, error) {
	if cfg.Node == "" {
		return nil, fmt.Errorf("network %q: node name is empty: %w", cfg.Network, ErrConfig)
	}
	n := NetworkFromConfig(cfg)
	if len(n.Subnets) == 0 {
		return nil, fmt.Errorf("network %q: no subnet: %w", cfg.Network, ErrConfig)
	}
	return &Source{c: c, net: n, node: cfg.Node, st: st, cfg: *cfg}, nil
}

// Network returns the network the source claims in.
func (s *Source) Network() Network { return s.net }

// Node returns the node the source claims for.
func (s *Source) Node() string { return s.node }

// Next implements ipam.BlockSource. With a store, it first looks locally
// for a free address in the usable held blocks of subnet and, if there is
// one, returns ErrHeldNotFull (an ipam.ErrExhausted) so the allocator
// reuses it: churn must not make a node claim the whole subnet. Then, in
// one list of the network's claims, it finds held blocks now claimed by
// another node (TakeLost) and the blocks to skip, and claims one.
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
			return netip.Prefix{}, fmt.Errorf("network %q: held blocks of %s have %d free addresses: %w", s.net.Name, subnet, free, ErrHeldNotFull)
		}
	}
	ctx, cancel := s.c.bound(ctx)
	defer cancel()
	uid, err := s.prepare(ctx)
	if err != nil {
		return netip.Prefix{}, err
	}
	claims, err := s.c.list(ctx, s.net.Name, "")
	if err != nil {
		return netip.Prefix{}, err
	}
	s.findLost(held, claims)
	b, err := s.c.ClaimNext(ctx, s.net, s.node, uid, subnet, held, claims)
	if err == nil {
		err = s.noteBound(ctx, b)
	}
	s.count(err)
	return b, err
}

// prepare checks the network's record once per Source and reads the
// node's Node UID once.
func (s *Source) prepare(ctx context.Context) (string, error) {
	s.mu.Lock()
	checked, uid, uidRead := s.checked, s.uid, s.uidRead
	s.mu.Unlock()
	if !checked {
		if err := s.c.ensureNetwork(ctx, s.net); err != nil {
			return "", err
		}
	}
	if !uidRead {
		var err error
		if uid, err = s.c.nodeUID(ctx, s.node); err != nil {
			return "", err
		}
	}
	s.mu.Lock()
	s.checked, s.uid, s.uidRead = true, uid, true
	s.mu.Unlock()
	return uid, nil
}

// findLost records the held blocks claims give to another node.
func (s *Source) findLost(held ipam.Held, claims []Block) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range claims {
		if b.Node != s.node && held.Has(b.CIDR) {
			s.lost = append(s.lost, ipam.LostBlock{Prefix: b.CIDR, Reason: lostReason(b)})
		}
	}
}

func lostReason(b Block) string {
	return fmt.Sprintf("block %s is claimed by node %q in the Kubernetes API (IPAMBlock %s)", b.CIDR, b.Node, b.name)
}

// TakeLost implements ipam.LossReporter.
func (s *Source) TakeLost() []ipam.LostBlock {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.lost
	s.lost = nil
	return out
}

// Containing implements ipam.BlockSource: the block holding addr, claimed
// for this node when it is free; another node's is ipam.ErrOutOfRange.
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
	if b.Bits() != bits {
		return netip.Prefix{}, fmt.Errorf("%s: its /%d block overlaps a held block of another length (the kubernetes source keeps one block length): %w", addr, bits, ipam.ErrOutOfRange)
	}
	if e, ok := s.net.excludedBy(b); ok {
		return netip.Prefix{}, fmt.Errorf("%s lies in excluded %s: %w", addr, e, ipam.ErrOutOfRange)
	}
	ctx, cancel := s.c.bound(ctx)
	defer cancel()
	uid, err := s.prepare(ctx)
	if err != nil {
		return netip.Prefix{}, err
	}
	err = s.c.ClaimBlock(ctx, s.net, s.node, uid, b)
	if err == nil {
		err = s.noteBound(ctx, b)
	}
	s.count(err)
	return b, err
}

// Available implements ipam.BlockSource without writing: one list of the
// network's claims, then the picker's walk over them.
func (s *Source) Available(ctx context.Context, subnet netip.Prefix, bits int, held ipam.Held) error {
	if err := s.checkBits(subnet, bits); err != nil {
		return err
	}
	sub, _ := s.net.subnet(subnet)
	claims, err := s.c.Blocks(ctx, s.net.Name, "")
	if err != nil {
		return err
	}
	taken := map[netip.Prefix]bool{}
	for _, b := range claims {
		taken[b.CIDR] = true
	}
	_, ok, err := s.net.walk(sub, seedOf(s.node), func(p netip.Prefix) bool { return held.Overlaps(p) || taken[p] })
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("network %q subnet %s: every /%d block is claimed or held: %w", s.net.Name, subnet, bits, ErrExhausted)
	}
	return nil
}

// Ranges implements ipam.BlockSource: the subnet, from which blocks are
// claimed on demand.
func (s *Source) Ranges(subnet netip.Prefix) []netip.Prefix {
	if _, ok := s.net.subnet(subnet); ok {
		return []netip.Prefix{subnet.Masked()}
	}
	return nil
}

// ClaimStats returns the blocks this source obtained and the claims that
// failed, for metrics.
func (s *Source) ClaimStats() (claims, failed int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.claims, s.failed
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

func (s *Source) checkBits(subnet netip.Prefix, bits int) error {
	sub, ok := s.net.subnet(subnet)
	if !ok || sub.BlockBits != bits {
		return fmt.Errorf("network %q: kubernetes source has no subnet %s with /%d blocks: %w", s.net.Name, subnet, bits, ErrConfig)
	}
	return nil
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
