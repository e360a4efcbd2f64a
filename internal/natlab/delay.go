package natlab

import (
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// delayTable is the routing table that sends the server's UDP traffic to
// the delay device.
const delayTable = "100"

// AddDelay delays the server's UDP packets by oneWay in each direction,
// without netem: policy routing sends them through a TUN device in the
// server namespace, and the test process writes each one back after the
// delay. UDP only (the rules select ipproto udp), so ARP and the rest
// pass at once. Removed when t ends.
func (w *World) AddDelay(t testing.TB, oneWay time.Duration) {
	t.Helper()
	var f *os.File
	err := w.Server.Do(func() error {
		var err error
		f, err = openTUN("dly0")
		return err
	})
	if err != nil {
		t.Fatalf("natlab: delay device: %v", err)
	}
	ns := w.Server.Name
	steps := [][]string{
		{"ip", "-n", ns, "link", "set", "dly0", "up"},
		{"ip", "-n", ns, "route", "add", "default", "dev", "dly0", "table", delayTable},
		{"ip", "-n", ns, "rule", "add", "pref", "100", "iif", "s0", "ipproto", "udp", "lookup", delayTable},
		{"ip", "-n", ns, "rule", "add", "pref", "101", "iif", "lo", "ipproto", "udp", "lookup", delayTable},
		{"ip", "-n", ns, "rule", "add", "pref", "1000", "lookup", "local"},
		{"ip", "-n", ns, "rule", "del", "pref", "0"},
	}
	for _, s := range steps {
		if _, err := Run(s...); err != nil {
			f.Close()
			t.Fatal(err)
		}
	}
	for _, kv := range []string{"net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.dly0.rp_filter=0",
		"net.ipv4.conf.dly0.accept_local=1"} {
		if _, err := In(ns, "sysctl", "-qw", kv); err != nil {
			f.Close()
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); delayLoop(f, oneWay) }()
	t.Cleanup(func() { f.Close(); wg.Wait() })
}

// openTUN creates TUN device name (no packet information header) in the
// calling thread's namespace. The descriptor is set up before Go's poller
// sees it (os.NewFile of a non-blocking descriptor), so reads wait in the
// poller and end when the file is closed.
func openTUN(name string) (*os.File, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	ifr, err := unix.NewIfreq(name)
	if err == nil {
		ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
		err = unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr)
	}
	if err == nil {
		err = unix.SetNonblock(fd, true)
	}
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("TUNSETIFF %s: %w", name, err)
	}
	return os.NewFile(uintptr(fd), "/dev/net/tun"), nil
}

// delayLoop writes every packet read from f back to it after d, until f
// is closed.
func delayLoop(f *os.File, d time.Duration) {
	buf := make([]byte, 65536)
	for {
		n, err := f.Read(buf)
		if err != nil {
			return
		}
		pkt := append([]byte(nil), buf[:n]...)
		time.AfterFunc(d, func() { f.Write(pkt) })
	}
}
