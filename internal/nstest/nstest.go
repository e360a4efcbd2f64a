// Package nstest builds throwaway hosts for tests that drive the real
// kernel: named network namespaces, veth pairs and bridges the test itself
// creates, and removes again through t.Cleanup, also when the test fails.
//
// Nothing here touches a pre-existing interface. A "LAN" is a namespace
// holding a Linux bridge; a "host" is a namespace (or, for Docker-style
// tests, the root namespace) holding one veth end that serves as macvlan
// master while its peer is a port of the LAN bridge. Peers are further
// namespaces plugged into the same bridge.
//
// Thread rules: helpers that must run code inside a namespace (NS.Do) lock
// an OS thread through containernetworking's pkg/ns; netlink work uses
// per-namespace handles (NS.Handle) and never switches the caller's thread.
// Functions run by NS.Do must return errors instead of calling t.Fatal.
package nstest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// SkipUnlessRoot skips t unless the process can create network namespaces
// and links: it needs uid 0 and the nsenter binary (for Exec).
func SkipUnlessRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("nstest: needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) to create network namespaces; run as root")
	}
	if _, err := exec.LookPath("nsenter"); err != nil {
		t.Skip("nstest: needs the nsenter binary (util-linux) in PATH")
	}
}

// UniqueName returns prefix followed by random hex digits, cut to the
// kernel's 15-character interface-name limit.
func UniqueName(prefix string) string {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("nstest: random: %v", err))
	}
	name := prefix + hex.EncodeToString(b[:])
	if len(name) > 15 {
		name = name[:15]
	}
	return name
}

// NS is a network namespace. The root namespace is represented by an NS
// with an empty Name (see Root); named ones live under
// /run/netns and are removed by t.Cleanup.
type NS struct {
	Name string // name under /run/netns; "" for the root namespace
	Path string // file usable with setns(2)
}

// rootFD holds the namespace the process started in, opened at init on
// the main thread before any test could switch a thread.
var rootFD = func() netns.NsHandle {
	h, err := netns.Get()
	if err != nil {
		return netns.None()
	}
	return h
}()

// Root returns the namespace the test process started in (normally the
// root namespace), where the root LAN's master lives. Its Path is a
// /proc/PID/fd path of a descriptor held open for the process's lifetime;
// "/proc/self/ns/net" would follow whatever the main thread runs in.
func Root() *NS {
	return &NS{Path: fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), int(rootFD))}
}

// IsRoot reports whether n is the root namespace.
func (n *NS) IsRoot() bool { return n.Name == "" }

// NewNS creates a named network namespace called prefix plus a random
// suffix, with loopback up, and deletes it when the test ends.
func NewNS(t testing.TB, prefix string) *NS {
	t.Helper()
	name := UniqueName(prefix)
	if err := newNamed(name); err != nil {
		t.Fatalf("nstest: create netns %q: %v", name, err)
	}
	n := &NS{Name: name, Path: "/run/netns/" + name}
	t.Cleanup(func() {
		if err := netns.DeleteNamed(name); err != nil {
			t.Errorf("nstest: delete netns %q: %v", name, err)
		}
	})
	h := n.Handle(t)
	lo, err := h.LinkByName("lo")
	if err == nil {
		err = h.LinkSetUp(lo)
	}
	if err != nil {
		t.Fatalf("nstest: netns %q: loopback up: %v", name, err)
	}
	return n
}

// newNamed creates the namespace on a locked thread and moves the thread
// back; if it cannot, the thread stays locked and dies with the goroutine,
// so no goroutine ever runs in a namespace it did not ask for.
func newNamed(name string) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		h, err := netns.NewNamed(name)
		if err == nil {
			h.Close()
		}
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// Handle returns a netlink handle bound to n, closed when the test ends.
func (n *NS) Handle(t testing.TB) *netlink.Handle {
	t.Helper()
	h, err := n.NewHandle()
	if err != nil {
		t.Fatalf("nstest: netlink handle in %s: %v", n, err)
	}
	t.Cleanup(h.Close)
	return h
}

// NewHandle returns a netlink handle bound to n; the caller closes it.
func (n *NS) NewHandle() (*netlink.Handle, error) {
	fd, err := netns.GetFromPath(n.Path)
	if err != nil {
		return nil, err
	}
	defer fd.Close()
	return netlink.NewHandleAt(fd)
}

// Do runs fn on a locked OS thread inside n and returns its error.
func (n *NS) Do(fn func() error) error {
	target, err := ns.GetNS(n.Path)
	if err != nil {
		return fmt.Errorf("nstest: open %s: %w", n, err)
	}
	defer target.Close()
	return target.Do(func(ns.NetNS) error { return fn() })
}

// Exec runs a command inside n (through nsenter) and returns its combined
// output; the error includes that output.
func (n *NS) Exec(name string, args ...string) ([]byte, error) {
	argv := append([]string{"--net=" + n.Path, name}, args...)
	out, err := exec.Command("nsenter", argv...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("nstest: in %s: %s %v: %w: %s", n, name, args, err, out)
	}
	return out, nil
}

// String names the namespace for messages.
func (n *NS) String() string {
	if n.IsRoot() {
		return "netns root"
	}
	return "netns " + n.Name
}
