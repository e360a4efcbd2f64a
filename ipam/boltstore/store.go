package boltstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/medianet/medianet/ipam"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// FileName and LockName are the store's files inside the data directory.
const (
	FileName = "ipam.db"
	LockName = "ipam.lock"
)

// SchemaVersion is the layout version written in a new store.
const SchemaVersion = "1"

// DefaultTimeout bounds how long Open waits for other processes.
const DefaultTimeout = 10 * time.Second

// Options tune Open.
type Options struct {
	// Timeout bounds the wait for the lock; 0 means DefaultTimeout.
	Timeout time.Duration
	// NoSync skips fsync on commit: for filling test and benchmark stores
	// only, never for real allocations.
	NoSync bool
}

// Store is an ipam.Store on a bbolt file. It holds the file exclusively
// until Close.
type Store struct {
	db   *bolt.DB
	lock *os.File
}

var _ ipam.Store = (*Store)(nil)

// Open opens (creating if needed) <dir>/ipam.db. dir must exist and be a
// writable directory (ipam.ErrConfig otherwise); other processes holding the
// store past opts.Timeout give ipam.ErrBusy.
func Open(ctx context.Context, dir string, opts Options) (*Store, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if err := checkDir(dir); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(opts.Timeout)
	lock, err := acquire(ctx, filepath.Join(dir, LockName), deadline)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, FileName)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: max(time.Until(deadline), 100*time.Millisecond)})
	if err != nil {
		lock.Close()
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("boltstore: open %s: %w", path, ipam.ErrBusy)
		}
		return nil, fmt.Errorf("boltstore: open %s: %w", path, err)
	}
	db.NoSync = opts.NoSync
	s := &Store{db: db, lock: lock}
	if err := s.initSchema(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func checkDir(dir string) error {
	if dir == "" {
		return fmt.Errorf("boltstore: data directory is empty: %w", ipam.ErrConfig)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("boltstore: data directory %q: create it first: %w: %w", dir, err, ipam.ErrConfig)
	}
	if !fi.IsDir() {
		return fmt.Errorf("boltstore: data directory %q is not a directory: %w", dir, ipam.ErrConfig)
	}
	return nil
}

// acquire takes an exclusive flock on path, polling with backoff until
// deadline.
func acquire(ctx context.Context, path string, deadline time.Time) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("boltstore: lock %s: data directory not writable: %w: %w", path, err, ipam.ErrConfig)
	}
	wait := time.Millisecond
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("boltstore: lock %s: %w", path, err)
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("boltstore: lock %s held by other processes: %w", path, ipam.ErrBusy)
		}
		sleep := wait/2 + rand.N(wait/2+1)
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("boltstore: lock %s: %w", path, ctx.Err())
		case <-time.After(sleep):
		}
		wait = min(wait*2, 32*time.Millisecond)
	}
}

func (s *Store) initSchema() error {
	return s.db.Update(func(btx *bolt.Tx) error {
		meta, err := btx.CreateBucketIfNotExists([]byte("meta"))
		if err != nil {
			return err
		}
		switch v := meta.Get([]byte("schema")); {
		case v == nil:
			if err := meta.Put([]byte("schema"), []byte(SchemaVersion)); err != nil {
				return err
			}
		case string(v) != SchemaVersion:
			return fmt.Errorf("boltstore: schema version %q, this binary knows %q: %w", v, SchemaVersion, ipam.ErrCorrupt)
		}
		_, err = btx.CreateBucketIfNotExists([]byte("nets"))
		return err
	})
}

// Close releases the file and the lock.
func (s *Store) Close() error {
	err := s.db.Close()
	if s.lock != nil {
		s.lock.Close() // closing drops the flock
	}
	return err
}

// Path returns the bbolt file's path.
func (s *Store) Path() string { return s.db.Path() }

// Update implements ipam.Store: fn runs in one bbolt write transaction.
func (s *Store) Update(ctx context.Context, fn func(ipam.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.Update(func(btx *bolt.Tx) error { return fn(&tx{btx: btx}) })
}

// View implements ipam.Store: fn runs in one read-only transaction.
func (s *Store) View(ctx context.Context, fn func(ipam.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.View(func(btx *bolt.Tx) error { return fn(&tx{btx: btx}) })
}
