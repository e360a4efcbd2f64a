package dockertest

import (
	"errors"
	"time"
)

// ErrNotYet is what a WaitFor condition returns (wrapped, with what it
// saw) while the awaited state has not come.
var ErrNotYet = errors.New("not yet")

// WaitFor polls cond every 250 ms for up to d and returns its last error
// (nil once cond succeeds).
func WaitFor(d time.Duration, cond func() error) error {
	deadline := time.Now().Add(d)
	for {
		err := cond()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(250 * time.Millisecond)
	}
}
