package etcdtest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/medianet/medianet/internal/nstest"
	"github.com/vishvananda/netlink"
)

// command returns the server's process: etcd itself, or etcd run inside
// its network namespace with `ip netns exec` (which execs etcd in place,
// so the PID and the signals are etcd's).
func (s *Server) command() *exec.Cmd {
	if s.netns == "" {
		return exec.Command(Binary, s.args()...)
	}
	return exec.Command("ip", append([]string{"netns", "exec", s.netns, Binary}, s.args()...)...)
}

// StartInNS starts a single-member etcd inside a network namespace of its
// own, joined to the test's namespace by a veth pair on a /30 of
// 10.253.0.0/16 that no route of the machine covers. Clients reach it
// through that veth only, so Blackhole can drop their packets inside the
// server's namespace: etcd stays up and silent, as behind a partition,
// rather than refusing connections as a stopped server does.
func StartInNS(t testing.TB, opts Options) *Server {
	t.Helper()
	SkipUnlessAvailable(t)
	nstest.SkipUnlessRoot(t)
	opts = opts.withDefaults()
	if opts.TLS {
		t.Fatal("etcdtest: StartInNS serves plain http (the certificates name 127.0.0.1)")
	}
	ns := nstest.NewNS(t, "mne")
	host, srv := pickLink(t)
	hostIf := nstest.UniqueName("mne")
	if err := nstest.Veth(nstest.Root(), hostIf, ns, "eth0"); err != nil {
		t.Fatalf("etcdtest: %v", err)
	}
	t.Cleanup(func() {
		if l, err := netlink.LinkByName(hostIf); err == nil {
			_ = netlink.LinkDel(l)
		}
	})
	nstest.AddAddrs(t, nstest.Root(), hostIf, host)
	nstest.AddAddrs(t, ns, "eth0", srv)
	// The namespace has ports of its own: etcd's usual ones are free.
	s := &Server{t: t, dir: t.TempDir(), name: "etcdtest", opts: opts, netns: ns.Name,
		clientURL: fmt.Sprintf("http://%s:%d", srv.Addr(), nsClientPort),
		peerURL:   fmt.Sprintf("http://%s:%d", srv.Addr(), nsPeerPort)}
	s.launchAlone(t)
	return s
}

// Ports of a server in its own namespace.
const nsClientPort, nsPeerPort = 2379, 2380

// pickLink returns the two ends of a /30 in 10.253.0.0/16 that no
// existing route of the machine covers (other than a default route).
func pickLink(t testing.TB) (host, srv netip.Prefix) {
	t.Helper()
	for range 64 {
		base := netip.AddrFrom4([4]byte{10, 253, byte(rand.N(256)), byte(rand.N(64) * 4)})
		if !routed(base) {
			return netip.PrefixFrom(base.Next(), 30), netip.PrefixFrom(base.Next().Next(), 30)
		}
	}
	t.Fatal("etcdtest: no free /30 in 10.253.0.0/16")
	return
}

// routed reports whether a route of the machine, other than a default
// route, has a destination holding a.
func routed(a netip.Addr) bool {
	routes, err := netlink.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		return true
	}
	for _, r := range routes {
		if r.Dst != nil && r.Dst.Contains(net.IP(a.AsSlice())) {
			if ones, _ := r.Dst.Mask.Size(); ones > 0 {
				return true
			}
		}
	}
	return false
}

// Blackhole drops every packet clients send to the server, inside its
// namespace (iptables DROP on its client port): calls hang until their
// deadline. Only for a server from StartInNS.
func (s *Server) Blackhole() error { return s.iptables("-I") }

// Heal removes Blackhole's rule.
func (s *Server) Heal() error { return s.iptables("-D") }

// Dropped returns how many packets Blackhole's rule has dropped: a test
// waits for it to grow to know a client's request reached the blackhole
// (rather than sleeping and hoping it did).
func (s *Server) Dropped() (uint64, error) {
	if s.netns == "" {
		return 0, fmt.Errorf("etcdtest: Dropped needs a server from StartInNS")
	}
	out, err := exec.Command("ip", "netns", "exec", s.netns, "iptables", "-L", "INPUT", "-n", "-v", "-x").CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("etcdtest: iptables -L in %s: %w: %s", s.netns, err, out)
	}
	var n uint64
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[2] == "DROP" && strings.Contains(line, fmt.Sprintf("dpt:%d", nsClientPort)) {
			v, _ := strconv.ParseUint(f[0], 10, 64)
			n += v
		}
	}
	return n, nil
}

// WaitDropped waits until Blackhole's rule has dropped more than after
// packets, or ctx ends.
func (s *Server) WaitDropped(ctx context.Context, after uint64) error {
	for {
		n, err := s.Dropped()
		if err != nil || n > after {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("etcdtest: no packet reached the blackhole: %w", ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (s *Server) iptables(op string) error {
	if s.netns == "" {
		return fmt.Errorf("etcdtest: Blackhole needs a server from StartInNS")
	}
	port := fmt.Sprint(nsClientPort)
	out, err := exec.Command("ip", "netns", "exec", s.netns, "iptables", op, "INPUT", "-p", "tcp", "--dport", port, "-j", "DROP").CombinedOutput()
	if err != nil {
		return fmt.Errorf("etcdtest: iptables %s in %s: %w: %s", op, s.netns, err, out)
	}
	return nil
}

// listenClientURLs is where the member accepts clients: its client URL,
// or every address of its own namespace (its links to several
// namespaces, see Link).
func (s *Server) listenClientURLs() string {
	if s.netns == "" {
		return s.clientURL
	}
	return fmt.Sprintf("http://0.0.0.0:%d", nsClientPort)
}

// Link joins namespace ns to a server from StartInNS by a veth pair of its
// own, and returns the endpoint clients in ns use and a function that cuts
// (true) or restores (false) that link alone: packets from ns are dropped
// inside the server's namespace, as in a partition of one node, while
// other clients carry on.
func (s *Server) Link(t testing.TB, ns *nstest.NS) (endpoint string, cut func(bool) error) {
	t.Helper()
	if s.netns == "" {
		t.Fatal("etcdtest: Link needs a server from StartInNS")
	}
	client, srv := pickLink(t)
	etcdNS := &nstest.NS{Name: s.netns, Path: "/run/netns/" + s.netns}
	ifname := nstest.UniqueName("mnl")
	if err := nstest.Veth(ns, "etcd0", etcdNS, ifname); err != nil {
		t.Fatalf("etcdtest: %v", err)
	}
	nstest.AddAddrs(t, ns, "etcd0", client)
	nstest.AddAddrs(t, etcdNS, ifname, srv)
	cut = func(on bool) error {
		op := "-D"
		if on {
			op = "-I"
		}
		out, err := exec.Command("ip", "netns", "exec", s.netns, "iptables", op, "INPUT", "-s", client.Addr().String(), "-j", "DROP").CombinedOutput()
		if err != nil {
			return fmt.Errorf("etcdtest: iptables %s from %s: %w: %s", op, client.Addr(), err, out)
		}
		return nil
	}
	return fmt.Sprintf("http://%s:%d", srv.Addr(), nsClientPort), cut
}
