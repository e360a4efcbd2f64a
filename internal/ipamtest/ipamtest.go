// Package ipamtest holds test helpers for ipam and its stores: a bbolt
// store in a temporary directory that is consistency-checked when the test
// ends, and terse constructors for addresses, prefixes and configs.
package ipamtest

import (
	"context"
	"net/netip"
	"testing"

	"github.com/medianet/medianet/ipam"
	"github.com/medianet/medianet/ipam/boltstore"
)

// Store opens a bbolt store in a fresh temporary directory. When the test
// ends, the store is closed, reopened and checked with Check; a failed
// check fails the test.
func Store(t testing.TB) *boltstore.Store {
	t.Helper()
	dir := t.TempDir()
	st, err := boltstore.Open(context.Background(), dir, boltstore.Options{})
	if err != nil {
		t.Fatalf("open store in %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
		CheckDir(t, dir)
	})
	return st
}

// CheckDir opens the store in dir and runs its consistency check.
func CheckDir(t testing.TB, dir string) {
	t.Helper()
	st, err := boltstore.Open(context.Background(), dir, boltstore.Options{})
	if err != nil {
		t.Errorf("reopen store in %s: %v", dir, err)
		return
	}
	defer st.Close()
	if err := st.Check(context.Background()); err != nil {
		t.Errorf("store in %s inconsistent: %v", dir, err)
	}
}

// Prefix parses s or panics.
func Prefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// Addr parses s or panics.
func Addr(s string) netip.Addr { return netip.MustParseAddr(s) }

// Config returns a single-node config of network over subnets (prefixes,
// default gateways).
func Config(network string, subnets ...string) ipam.Config {
	c := ipam.Config{Network: network, Node: "node-a"}
	for _, s := range subnets {
		c.Subnets = append(c.Subnets, ipam.Subnet{Prefix: Prefix(s)})
	}
	return c
}

// Allocator returns an allocator for cfg over st, failing the test on error.
func Allocator(t testing.TB, cfg ipam.Config, st ipam.Store) *ipam.Allocator {
	t.Helper()
	a, err := ipam.NewAllocator(cfg, st, nil)
	if err != nil {
		t.Fatalf("new allocator for %q: %v", cfg.Network, err)
	}
	return a
}
