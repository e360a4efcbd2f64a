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

	"github.com/medianet/medianet/internal/ipamtest"
	"github.com/medianet/medianet/ipam"
	"github.com/medianet/medianet/ipam/boltstore"
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
		{"not a dir", file, "is not a directory"},
		{"under a file", filepath.Join(file, "sub"), "not a directory"},
		{"empty", "", "data directory is empty"},
	}
	for _, tt := range tests {
		_, err := boltstore.Open(ctx, tt.dir, boltstore.Options{})
		if !errors.Is(err, ipam.ErrConfig) || !containsAll(err.Error(), tt.msg, tt.dir) {
			t.Errorf("%s: Open(%q) = %v, want ErrConfig naming %q", tt.name, tt.dir, err, tt.msg)
		}
	}
}

// TestOpenCreatesDir: a missing data directory is created with mode 0700,
// parents included, as host-local does; a kubelet node does not make it.
func TestOpenCreatesDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "var", "lib", "medianet")
	st, err := boltstore.Open(ctx, dir, boltstore.Options{})
	if err != nil {
		t.Fatalf("Open(missing %s) = %v, want it created", dir, err)
	}
	defer st.Close()
	fi, err := os.Stat(dir)
	if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		t.Fatalf("data dir %s: %v, %v; want a 0700 directory", dir, fi.Mode(), err)
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

// TestLockPerTransaction: the node's store lock is held only inside a
// transaction. Another process (here: another Store on the same
// directory) works freely between this one's transactions, and waits,
// then gets ErrBusy, while a transaction runs.
func TestLockPerTransaction(t *testing.T) {
	dir := t.TempDir()
	st, err := boltstore.Open(ctx, dir, boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	other, err := boltstore.Open(ctx, dir, boltstore.Options{Timeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatalf("second Open between transactions = %v, want nil", err)
	}
	if err := other.Update(ctx, func(ipam.Tx) error { return nil }); err != nil {
		t.Fatalf("Update of another store between transactions = %v", err)
	}
	err = st.Update(ctx, func(ipam.Tx) error {
		err := other.Update(ctx, func(ipam.Tx) error { return nil })
		if !errors.Is(err, ipam.ErrBusy) {
			return fmt.Errorf("Update during another's transaction = %v, want ErrBusy", err)
		}
		if err := other.View(ctx, func(ipam.Tx) error { return nil }); !errors.Is(err, ipam.ErrBusy) {
			return fmt.Errorf("View during another's write = %v, want ErrBusy", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if other.LockWait() < 50*time.Millisecond {
		t.Errorf("LockWait() = %v after two 50ms timeouts, want at least 50ms", other.LockWait())
	}
	// Readers share: a View inside another's View does not wait.
	err = st.View(ctx, func(ipam.Tx) error { return other.View(ctx, func(ipam.Tx) error { return nil }) })
	if err != nil {
		t.Fatalf("View during another's View = %v, want nil", err)
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

// TestUninitialisedFile: a writer killed after creating the file but
// before its first commit leaves either a valid, empty bbolt file, or an
// empty file (killed before bbolt wrote its first pages); the next
// process must initialise it, not call it corrupt, and a reader (View,
// as medianetctl and the CNI checks read) must not fail on it.
func TestUninitialisedFile(t *testing.T) {
	tests := []struct {
		name string
		make func(path string) error
	}{
		{"empty bbolt file", func(path string) error {
			db, err := bolt.Open(path, 0o600, nil)
			if err != nil {
				return err
			}
			return db.Close()
		}},
		{"zero-length file", func(path string) error { return os.WriteFile(path, nil, 0o600) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := tt.make(filepath.Join(dir, boltstore.FileName)); err != nil {
				t.Fatal(err)
			}
			st, err := boltstore.Open(ctx, dir, boltstore.Options{})
			if err != nil {
				t.Fatalf("Open of an uninitialised store = %v", err)
			}
			if err := st.View(ctx, func(ipam.Tx) error { return nil }); err != nil {
				t.Errorf("View = %v", err)
			}
			if err := st.Check(ctx); err != nil {
				t.Errorf("Check = %v", err)
			}
		})
	}
}
