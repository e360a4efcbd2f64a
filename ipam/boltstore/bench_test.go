package boltstore_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/medianet/medianet/internal/ipamtest"
	"github.com/medianet/medianet/ipam"
	"github.com/medianet/medianet/ipam/boltstore"
)

// fill allocates n addresses in a fresh store (without fsync, to set up
// fast) and returns its directory.
func fill(b *testing.B, cfg ipam.Config, n int) string {
	b.Helper()
	dir := b.TempDir()
	st, err := boltstore.Open(context.Background(), dir, boltstore.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	a, err := ipam.NewAllocator(cfg, st, nil)
	if err != nil {
		b.Fatal(err)
	}
	for i := range n {
		if _, err := a.Allocate(context.Background(), ipam.Request{ContainerID: fmt.Sprintf("fill-%d", i), IfName: "eth0"}); err != nil {
			b.Fatalf("fill %d: %v", i, err)
		}
	}
	return dir
}

// BenchmarkAllocateRelease measures one Allocate plus one Release (two
// fsynced write transactions) in a /16 already holding n allocations. The
// cost must not grow with n. "nosync" variants skip fsync to show the CPU
// cost alone; "open" variants also open and close the store
// around each operation, as a CNI plugin process does.
func BenchmarkAllocateRelease(b *testing.B) {
	cfg := ipamtest.Config("bench", "10.200.0.0/16")
	for _, n := range []int{0, 1000, 10000, 60000} {
		dir := fill(b, cfg, n)
		b.Run(fmt.Sprintf("existing=%d", n), func(b *testing.B) { allocRelease(b, cfg, dir, false) })
		b.Run(fmt.Sprintf("nosync/existing=%d", n), func(b *testing.B) { allocRelease(b, cfg, dir, true) })
		b.Run(fmt.Sprintf("open/existing=%d", n), func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				cid := fmt.Sprintf("bench-open-%d", i)
				for _, release := range []bool{false, true} {
					st, err := boltstore.Open(context.Background(), dir, boltstore.Options{})
					if err != nil {
						b.Fatal(err)
					}
					a := ipamtest.Allocator(b, cfg, st)
					if release {
						_, _, err = a.Release(context.Background(), cid, "eth0")
					} else {
						_, err = a.Allocate(context.Background(), ipam.Request{ContainerID: cid, IfName: "eth0"})
					}
					st.Close()
					if err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// allocRelease is one sub-benchmark over the store in dir; noSync leaves
// out the fsync so the CPU cost of the data structures shows.
func allocRelease(b *testing.B, cfg ipam.Config, dir string, noSync bool) {
	st, err := boltstore.Open(context.Background(), dir, boltstore.Options{NoSync: noSync})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	a := ipamtest.Allocator(b, cfg, st)
	prefix := fmt.Sprintf("bench-%t-", noSync)
	for i := 0; b.Loop(); i++ {
		cid := prefix + fmt.Sprint(i)
		if _, err := a.Allocate(context.Background(), ipam.Request{ContainerID: cid, IfName: "eth0"}); err != nil {
			b.Fatal(err)
		}
		if _, _, err := a.Release(context.Background(), cid, "eth0"); err != nil {
			b.Fatal(err)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, boltstore.FileName)); err == nil {
		b.ReportMetric(float64(fi.Size()), "store-bytes")
	}
}

// BenchmarkEmptyTx measures what the per-transaction lock costs: taking
// the flock, opening and closing the bbolt file around an empty
// transaction.
func BenchmarkEmptyTx(b *testing.B) {
	st, err := boltstore.Open(context.Background(), b.TempDir(), boltstore.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	noop := func(ipam.Tx) error { return nil }
	b.Run("view", func(b *testing.B) {
		for b.Loop() {
			if err := st.View(context.Background(), noop); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("update-nosync", func(b *testing.B) {
		for b.Loop() {
			if err := st.Update(context.Background(), noop); err != nil {
				b.Fatal(err)
			}
		}
	})
}
