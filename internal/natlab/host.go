package natlab

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math/big"
	"net/netip"
	"strings"
	"testing"
)

// HostServer is a namespace routed from the root namespace through a veth
// the lab creates, for servers that containers on a runtime's bridge reach
// through the host's own NAT. Its /24 is chosen in 198.19.0.0/16 (a
// benchmarking range) where the root namespace has no route yet, and the
// lab checks that the route it adds goes to its veth, never out of eth0.
type HostServer struct {
	NS       string     // namespace name
	Link     string     // root-side veth name
	HostIP   netip.Addr // root side of the veth
	IP1, IP2 netip.Addr // two addresses inside the namespace
}

// NewHostServer builds a HostServer removed when t ends.
func NewHostServer(t testing.TB) *HostServer {
	t.Helper()
	Skip(t)
	b := make([]byte, 3)
	rand.Read(b)
	id := hex.EncodeToString(b)
	h := &HostServer{NS: "npxh" + id, Link: "npxh" + id}
	t.Cleanup(func() {
		Run("ip", "link", "del", h.Link)
		Run("ip", "netns", "del", h.NS)
	})
	if err := h.build(); err != nil {
		t.Fatalf("natlab: host server: %v", err)
	}
	return h
}

func (h *HostServer) build() error {
	var prefix string
	for range 20 {
		n, _ := rand.Int(rand.Reader, big.NewInt(200))
		prefix = fmt.Sprintf("198.19.%d", 20+n.Int64())
		if !routed(prefix + ".0/24") {
			break
		}
		prefix = ""
	}
	if prefix == "" {
		return fmt.Errorf("no free /24 in 198.19.0.0/16")
	}
	h.HostIP = netip.MustParseAddr(prefix + ".1")
	h.IP1, h.IP2 = netip.MustParseAddr(prefix+".10"), netip.MustParseAddr(prefix+".11")
	steps := [][]string{
		{"ip", "netns", "add", h.NS},
		{"ip", "link", "add", h.Link, "type", "veth", "peer", "name", "s0", "netns", h.NS},
		{"ip", "addr", "add", prefix + ".1/24", "dev", h.Link},
		{"ip", "link", "set", h.Link, "up"},
		{"ip", "-n", h.NS, "addr", "add", prefix + ".10/24", "dev", "s0"},
		{"ip", "-n", h.NS, "addr", "add", prefix + ".11/24", "dev", "s0"},
		{"ip", "-n", h.NS, "link", "set", "lo", "up"},
		{"ip", "-n", h.NS, "link", "set", "s0", "up"},
		{"ip", "-n", h.NS, "route", "add", "default", "via", prefix + ".1"},
	}
	for _, s := range steps {
		if _, err := Run(s...); err != nil {
			return err
		}
	}
	out, err := Run("ip", "route", "get", h.IP1.String())
	if err != nil || !strings.Contains(out, "dev "+h.Link) {
		return fmt.Errorf("route to %v does not go to %s: %q", h.IP1, h.Link, out)
	}
	return nil
}

// routed reports whether the root namespace has a route other than the
// default one covering prefix.
func routed(prefix string) bool {
	out, err := Run("ip", "-4", "route", "show", "match", prefix)
	if err != nil {
		return true
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line != "" && !strings.HasPrefix(line, "default") {
			return true
		}
	}
	return false
}
