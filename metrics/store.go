package metrics

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/medianet/medianet/ipam"
	"github.com/medianet/medianet/ipam/boltstore"
)

// blockInfo is what a scrape keeps of one held block.
type blockInfo struct {
	prefix     netip.Prefix
	used, free int
	lost       bool
}

// storeReader reads the node's IPAM store for a scrape.
type storeReader struct {
	dir     string
	timeout time.Duration
}

// read copies the held blocks of every network in one read-only
// transaction, and nothing else: the cost of a scrape grows with the
// number of blocks, never with the number of allocations, and the store
// lock is held (shared) only for that View. A missing store is no error
// (no network yet); it is not created.
func (r storeReader) read(ctx context.Context) (map[string][]blockInfo, error) {
	if _, err := os.Stat(filepath.Join(r.dir, boltstore.FileName)); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	st, err := boltstore.Open(ctx, r.dir, boltstore.Options{Timeout: r.timeout})
	if err != nil {
		return nil, fmt.Errorf("metrics: store %s: %w", r.dir, err)
	}
	defer st.Close()
	out := map[string][]blockInfo{}
	err = st.View(ctx, func(tx ipam.Tx) error {
		clear(out) // a View is never retried, but stay correct if it were
		nets, err := tx.Networks()
		if err != nil {
			return err
		}
		for _, n := range nets {
			var bs []blockInfo
			err := tx.ForEachBlock(n, func(b ipam.Block) error {
				bs = append(bs, blockInfo{prefix: b.Prefix, used: popcount(b.Used), free: b.Free(), lost: b.Lost != ""})
				return nil
			})
			if err != nil {
				return fmt.Errorf("network %q: %w", n, err)
			}
			out[n] = bs
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("metrics: read store %s: %w", r.dir, err)
	}
	return out, nil
}

func popcount(words []uint64) int {
	n := 0
	for _, w := range words {
		n += bits.OnesCount64(w)
	}
	return n
}

// subnetState is the state gauges of one subnet (or of a network's
// blocks when its configuration is unknown: subnet invalid).
type subnetState struct {
	subnet               netip.Prefix
	inUse, blockFree     float64
	blocks, lost         float64
	rangeSize, rangeFree float64
	hasRange             bool
}

// claims is what a scrape read of a network's block claims in etcd.
type claims struct {
	etcd    bool           // the network's blocks are claimed in etcd
	blocks  []netip.Prefix // claimed by any node
	readErr error          // reading them failed: the range is unknown
}

// subnetStates computes the gauges of one network from its held blocks
// and, when known, its configuration and its blocks claimed in etcd.
func subnetStates(cfg *ipam.Config, blocks []blockInfo, cl claims) []subnetState {
	if cfg == nil {
		s := subnetState{}
		for _, b := range blocks {
			s.add(b)
		}
		return []subnetState{s}
	}
	var out []subnetState
	for _, sub := range cfg.Subnets {
		s := subnetState{subnet: sub.Prefix.Masked(), hasRange: cl.readErr == nil}
		ranges := nodeRanges(cfg, sub)
		reserved := cfg.Reserved(sub)
		for _, r := range ranges {
			s.rangeSize += usable(r, reserved)
		}
		s.rangeFree = s.rangeSize
		for _, b := range blocks {
			if !s.subnet.Contains(b.prefix.Addr()) {
				continue
			}
			s.add(b)
			if !cl.etcd && !b.lost && inAny(b.prefix, ranges) {
				s.rangeFree -= float64(b.used)
			}
		}
		if cl.etcd {
			// Any unclaimed block may still become this node's; blocks
			// claimed by anyone count only for what this node holds free.
			s.rangeFree = s.rangeSize + s.blockFree
			for _, c := range cl.blocks {
				if s.subnet.Contains(c.Addr()) {
					s.rangeFree -= usable(c, reserved)
				}
			}
		}
		s.rangeFree = max(s.rangeFree, 0)
		out = append(out, s)
	}
	return out
}

// add counts held block b.
func (s *subnetState) add(b blockInfo) {
	s.inUse += float64(b.used)
	s.blocks++
	if b.lost {
		s.lost++
		return
	}
	s.blockFree += float64(b.free)
}
