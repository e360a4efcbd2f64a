package boltstore_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/medianet/medianet/ipam"
	"github.com/medianet/medianet/ipam/boltstore"
	"github.com/medianet/medianet/internal/ipamtest"
	bolt "go.etcd.io/bbolt"
)

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "plain")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, dir, msg string
	}{
		{"missing", filepath.Join(dir, "nope"), "create it first"},
		{"not a dir", file, "is not a directory"},
		{"empty", "", "data directory is empty"},
	}
	for _, tt := range tests {
		_, err := boltstore.Open(ctx, tt.dir, boltstore.Options{})
		if !errors.Is(err, ipam.ErrConfig) || !containsAll(err.Error(), tt.msg, tt.dir) {
			t.Errorf("%s: Open(%q) = %v, want ErrConfig naming %q", tt.name, tt.dir, err, tt.msg)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "nope")); !os.IsNotExist(err) {
		t.Errorf("Open of a missing dir created it: %v", err)
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

func TestOpenBusy(t *testing.T) {
	dir := t.TempDir()
	st, err := boltstore.Open(ctx, dir, boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	_, err = boltstore.Open(ctx, dir, boltstore.Options{Timeout: 50 * time.Millisecond})
	if !errors.Is(err, ipam.ErrBusy) {
		t.Fatalf("second Open while held = %v, want ErrBusy", err)
	}
	if info, err := os.Stat(filepath.Join(dir, boltstore.FileName)); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("store file mode = %v, %v, want 0600", info.Mode(), err)
	}
}

func TestSchemaVersion(t *testing.T) {
	dir := t.TempDir()
	db, err := bolt.Open(filepath.Join(dir, boltstore.FileName), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b, _ := tx.CreateBucket([]byte("meta"))
		return b.Put([]byte("schema"), []byte("99"))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := boltstore.Open(ctx, dir, boltstore.Options{}); !errors.Is(err, ipam.ErrCorrupt) {
		t.Errorf("Open of schema 99 = %v, want ErrCorrupt", err)
	}
}

// TestParallelOpens: goroutines each open the store, allocate, close, as
// CNI plugin processes do; no duplicate, all accounted for.
func TestParallelOpens(t *testing.T) {
	dir := t.TempDir()
	cfg := ipamtest.Config("media", "10.7.0.0/22", "fd00:7::/64")
	const workers, each = 8, 25
	var mu sync.Mutex
	got := map[netip.Addr]string{}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				cid := fmt.Sprintf("w%d-%d", w, i)
				a, err := allocOnce(dir, cfg, cid)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				for _, ip := range a.IPs {
					if prev, dup := got[ip]; dup {
						errs <- fmt.Errorf("%s given to %s and %s", ip, prev, cid)
					}
					got[ip] = cid
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if want := workers * each * 2; len(got) != want {
		t.Errorf("%d distinct addresses, want %d", len(got), want)
	}
	ipamtest.CheckDir(t, dir)
}

func allocOnce(dir string, cfg ipam.Config, cid string) (ipam.Allocation, error) {
	st, err := boltstore.Open(context.Background(), dir, boltstore.Options{})
	if err != nil {
		return ipam.Allocation{}, err
	}
	defer st.Close()
	a, err := ipam.NewAllocator(cfg, st, nil)
	if err != nil {
		return ipam.Allocation{}, err
	}
	return a.Allocate(context.Background(), ipam.Request{ContainerID: cid, IfName: "eth0"})
}

func TestCheckFindsCorruption(t *testing.T) {
	dir := t.TempDir()
	if _, err := allocOnce(dir, ipamtest.Config("media", "10.8.0.0/24"), "c1"); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(filepath.Join(dir, boltstore.FileName), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Drop the reverse index entry behind the store's back.
	err = db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("nets")).Bucket([]byte("media")).DeleteBucket([]byte("addr"))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	st, err := boltstore.Open(ctx, dir, boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Check(ctx); !errors.Is(err, ipam.ErrCorrupt) {
		t.Errorf("Check() = %v, want ErrCorrupt", err)
	}
}
