package natprobe

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// NetnsNetwork opens sockets inside the network namespace at a path (such
// as /var/run/netns/NAME or /proc/PID/ns/net). One OS thread, locked and
// moved into the namespace, creates every socket; a socket stays in the
// namespace it was created in, so the rest of the prober runs anywhere.
// The thread is never returned to the scheduler: when Close ends it, the
// Go runtime discards the thread.
type NetnsNetwork struct {
	reqs chan func()
	done chan struct{}
}

// NewNetnsNetwork starts the namespace thread for path.
func NewNetnsNetwork(path string) (*NetnsNetwork, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("natprobe: open netns %q: %w", path, err)
	}
	n := &NetnsNetwork{reqs: make(chan func()), done: make(chan struct{})}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread: the thread dies with the goroutine.
		err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET)
		f.Close()
		errc <- err
		if err != nil {
			return
		}
		for {
			select {
			case fn := <-n.reqs:
				fn()
			case <-n.done:
				return
			}
		}
	}()
	if err := <-errc; err != nil {
		return nil, fmt.Errorf("natprobe: enter netns %q: %w", path, err)
	}
	return n, nil
}

// Close ends the namespace thread; sockets already open stay usable.
func (n *NetnsNetwork) Close() error {
	close(n.done)
	return nil
}

func (n *NetnsNetwork) do(fn func()) {
	ran := make(chan struct{})
	n.reqs <- func() { fn(); close(ran) }
	<-ran
}

// ListenUDP implements Network inside the namespace.
func (n *NetnsNetwork) ListenUDP(laddr netip.AddrPort) (c *net.UDPConn, err error) {
	n.do(func() { c, err = HostNetwork{}.ListenUDP(laddr) })
	return c, err
}

// SourceFor implements Network with the namespace's routes.
func (n *NetnsNetwork) SourceFor(dst netip.AddrPort) (a netip.Addr, err error) {
	n.do(func() { a, err = HostNetwork{}.SourceFor(dst) })
	return a, err
}
