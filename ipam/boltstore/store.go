package boltstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
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

// DefaultTimeout bounds how long a transaction waits for other processes.
const DefaultTimeout = 10 * time.Second

// Options tune Open.
type Options struct {
	// Timeout bounds each wait for the lock; 0 means DefaultTimeout.
	Timeout time.Duration
	// NoSync skips fsync on commit: for filling test and benchmark stores
	// only, never for real allocations.
	NoSync bool
}

// Store is an ipam.Store on a bbolt file. It holds the file, and the
// node's store lock, only for the length of one transaction: between
// transactions (while a caller talks to etcd, say) other processes of the
// node use the store freely.
type Store struct {
	dir  string
	opts Options

	// mu orders this process's own transactions (writers exclusive,
	// readers shared) before they take the file lock, so goroutines of a
	// daemon queue on a mutex rather than poll the flock.
	mu sync.RWMutex

	// lockWait is the total time transactions waited for the file lock
	// (other processes), in nanoseconds.
	lockWait atomic.Int64
}

var _ ipam.Store = (*Store)(nil)

// Open checks dir (creating it with mode 0700 when missing, as host-local
// does) and the store's schema (creating <dir>/ipam.db on first use).
// It holds nothing open afterwards. A data directory that cannot be used
// is ipam.ErrConfig; other processes holding the store past opts.Timeout
// give ipam.ErrBusy.
func Open(ctx context.Context, dir string, opts Options) (*Store, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if err := ensureDir(dir); err != nil {
		return nil, err
	}
	s := &Store{dir: dir, opts: opts}
	// Check the schema (creating the file on first use) now, so that a
	// store this binary cannot read fails here. A read when the file
	// exists: no write, no fsync.
	if err := s.View(ctx, func(ipam.Tx) error { return nil }); err != nil {
		return nil, err
	}
	return s, nil
}

func ensureDir(dir string) error {
	if dir == "" {
		return fmt.Errorf("boltstore: data directory is empty: %w", ipam.ErrConfig)
	}
	if fi, err := os.Stat(dir); err == nil && !fi.IsDir() {
		return fmt.Errorf("boltstore: data directory %q is not a directory: %w", dir, ipam.ErrConfig)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("boltstore: create data directory %q: %w: %w", dir, err, ipam.ErrConfig)
	}
	return nil
}

// Close releases nothing held between transactions; it exists for the
// ipam.Store interface and for symmetry with Open.
func (s *Store) Close() error { return nil }

// Path returns the bbolt file's path.
func (s *Store) Path() string { return filepath.Join(s.dir, FileName) }

// Dir returns the data directory.
func (s *Store) Dir() string { return s.dir }

// LockWait returns the total time this Store's transactions waited for
// other processes to release the node's store lock.
func (s *Store) LockWait() time.Duration { return time.Duration(s.lockWait.Load()) }

// Update implements ipam.Store: fn runs in one bbolt write transaction,
// under the node's exclusive store lock.
func (s *Store) Update(ctx context.Context, fn func(ipam.Tx) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.with(ctx, true, func(db *bolt.DB) error {
		return db.Update(func(btx *bolt.Tx) error {
			if err := initSchema(btx); err != nil {
				return err
			}
			return fn(&tx{btx: btx})
		})
	})
}

// View implements ipam.Store: fn runs in one read-only transaction, under
// a shared store lock (readers never wait for each other).
func (s *Store) View(ctx context.Context, fn func(ipam.Tx) error) error {
	if _, err := os.Stat(s.Path()); errors.Is(err, os.ErrNotExist) {
		// A fresh node: create the file and its schema first.
		if err := s.Update(ctx, func(ipam.Tx) error { return nil }); err != nil {
			return err
		}
	}
	err := s.view(ctx, fn)
	if errors.Is(err, errUninitialized) {
		// A writer was killed between creating the file and its first
		// commit: initialise it (a write), then read.
		if err := s.Update(ctx, func(ipam.Tx) error { return nil }); err != nil {
			return err
		}
		err = s.view(ctx, fn)
	}
	return err
}

func (s *Store) view(ctx context.Context, fn func(ipam.Tx) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.with(ctx, false, func(db *bolt.DB) error {
		return db.View(func(btx *bolt.Tx) error {
			if err := checkSchema(btx); err != nil {
				return err
			}
			return fn(&tx{btx: btx})
		})
	})
}

// errUninitialized: the file exists but holds none of the store's
// buckets (its creator died before its first commit).
var errUninitialized = errors.New("boltstore: store not initialised")

// with takes the file lock (exclusive for writers), opens the bbolt file,
// runs fn and closes both.
func (s *Store) with(ctx context.Context, write bool, fn func(*bolt.DB) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	start := time.Now()
	deadline := start.Add(s.opts.Timeout)
	lock, err := acquire(ctx, filepath.Join(s.dir, LockName), write, deadline)
	s.lockWait.Add(int64(time.Since(start)))
	if err != nil {
		return err
	}
	defer lock.Close() // closing drops the flock
	if !write {
		// A creator killed before bbolt wrote its first pages leaves an
		// empty file, which bbolt would initialise: a write, failing on
		// a read-only descriptor (EBADF). The caller initialises it.
		if fi, err := os.Stat(s.Path()); err == nil && fi.Size() == 0 {
			return errUninitialized
		}
	}
	db, err := bolt.Open(s.Path(), 0o600, &bolt.Options{
		Timeout:  max(time.Until(deadline), 100*time.Millisecond),
		ReadOnly: !write,
		NoSync:   s.opts.NoSync,
	})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return fmt.Errorf("boltstore: open %s: %w", s.Path(), ipam.ErrBusy)
		}
		return fmt.Errorf("boltstore: open %s: %w", s.Path(), err)
	}
	err = fn(db)
	if cerr := db.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("boltstore: close %s: %w", s.Path(), cerr)
	}
	return err
}

// initSchema creates the top buckets and the schema key on first use, and
// checks the schema otherwise.
func initSchema(btx *bolt.Tx) error {
	if btx.Bucket(bMeta) != nil && btx.Bucket(bNets) != nil {
		return checkSchema(btx)
	}
	meta, err := btx.CreateBucketIfNotExists(bMeta)
	if err != nil {
		return err
	}
	if meta.Get(kSchema) == nil {
		if err := meta.Put(kSchema, []byte(SchemaVersion)); err != nil {
			return err
		}
	}
	if _, err := btx.CreateBucketIfNotExists(bNets); err != nil {
		return err
	}
	return checkSchema(btx)
}

func checkSchema(btx *bolt.Tx) error {
	meta := btx.Bucket(bMeta)
	if meta == nil && btx.Bucket(bNets) == nil {
		return errUninitialized
	}
	if meta == nil || btx.Bucket(bNets) == nil {
		return fmt.Errorf("boltstore: buckets meta or nets missing: %w", ipam.ErrCorrupt)
	}
	if v := meta.Get(kSchema); string(v) != SchemaVersion {
		return fmt.Errorf("boltstore: schema version %q, this binary knows %q: %w", v, SchemaVersion, ipam.ErrCorrupt)
	}
	return nil
}
