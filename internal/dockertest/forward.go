package dockertest

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/medianet/medianet/internal/nstest"
)

// Forward serves, on listen ("addr:port") inside ns, a TCP relay to
// target, which the test process dials from its own namespace (a loopback
// etcd of internal/etcdtest, say): hosts on a LAN of ns then reach a
// server only the test process could, and dropping packets to listen in
// ns (iptables) blackholes that server for them. The relay stops, and its
// connections close, when t ends.
func Forward(t testing.TB, ns *nstest.NS, listen, target string) {
	t.Helper()
	var l net.Listener
	err := ns.Do(func() error {
		var err error
		l, err = net.Listen("tcp", listen) // the socket stays in ns
		return err
	})
	if err != nil {
		t.Fatalf("dockertest: forward %s in %s: %v", listen, ns, err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	track := func(c net.Conn) {
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			track(c)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				u, err := net.DialTimeout("tcp", target, 5*time.Second)
				if err != nil {
					return
				}
				track(u)
				defer u.Close()
				done := make(chan struct{}, 2)
				go func() { _, _ = io.Copy(u, c); done <- struct{}{} }()
				go func() { _, _ = io.Copy(c, u); done <- struct{}{} }()
				<-done
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
}
