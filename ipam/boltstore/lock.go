package boltstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/medianet/medianet/ipam"
)

// acquire takes a flock on path (exclusive or shared) before deadline. The
// flock blocks in the kernel, which queues waiters and wakes one as soon as
// the holder lets go: a burst of a hundred ADDs waits milliseconds where
// polling with backoff made some wait seconds. A wait given up (deadline,
// ctx) leaves the blocked call behind; it closes the file, dropping the
// lock, as soon as it gets it.
func acquire(ctx context.Context, path string, exclusive bool, deadline time.Time) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("boltstore: lock %s: data directory not writable: %w: %w", path, err, ipam.ErrConfig)
	}
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	if syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB) == nil {
		return f, nil // the common case: nobody holds it
	}
	got := make(chan error, 1)
	go func() {
		var err error
		for {
			if err = syscall.Flock(int(f.Fd()), how); !errors.Is(err, syscall.EINTR) {
				break
			}
		}
		got <- err
	}()
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	var why error
	select {
	case err := <-got:
		if err == nil {
			return f, nil
		}
		f.Close()
		return nil, fmt.Errorf("boltstore: lock %s: %w", path, err)
	case <-timer.C:
		why = fmt.Errorf("boltstore: lock %s held by other processes: %w", path, ipam.ErrBusy)
	case <-ctx.Done():
		why = fmt.Errorf("boltstore: lock %s: %w", path, ctx.Err())
	}
	go func() {
		<-got
		f.Close()
	}()
	return nil, why
}

// ClaimLock serialises, per network, the processes of this node that need
// a new block from a cluster source, so that a burst of first ADDs asks
// etcd once rather than once per ADD (each with its own connection, TLS
// handshake and password check): the first claims, the others find the
// block held when they get the lock. It is not the store's lock: it keeps
// waiting only processes that would otherwise claim, never a transaction,
// an ADD that has room, or another network. Implements ipam.ClaimLocker.
func (s *Store) ClaimLock(ctx context.Context, network string) (func(), error) {
	start := time.Now()
	f, err := acquire(ctx, filepath.Join(s.dir, "claim-"+lockName(network)+".lock"), true, start.Add(s.opts.Timeout))
	s.lockWait.Add(int64(time.Since(start)))
	if err != nil {
		return nil, err
	}
	return func() { f.Close() }, nil
}

// lockName makes a network name safe as a file name.
func lockName(network string) string {
	b := []byte(network)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			b[i] = '_'
		}
	}
	return string(b)
}

var _ ipam.ClaimLocker = (*Store)(nil)
