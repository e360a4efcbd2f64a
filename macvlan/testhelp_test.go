package macvlan_test

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/medianet/medianet/internal/nstest"
)

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func addr(s string) netip.Addr  { return netip.MustParseAddr(s) }

// env is one throwaway host: a LAN with master "mv0" in Host, and a
// container namespace.
type env struct {
	lan  *nstest.LAN
	cont *nstest.NS
}

func newEnv(t *testing.T) env {
	t.Helper()
	nstest.SkipUnlessRoot(t)
	lan := nstest.NewLAN(t, "mvt")
	return env{lan: lan, cont: nstest.NewNS(t, "mvc")}
}

// links returns the sorted link names in n.
func links(t *testing.T, n *nstest.NS) []string {
	t.Helper()
	ls, err := n.Handle(t).LinkList()
	if err != nil {
		t.Fatalf("list links in %s: %v", n, err)
	}
	var names []string
	for _, l := range ls {
		names = append(names, l.Attrs().Name)
	}
	slices.Sort(names)
	return names
}

// eventually polls cond every 10ms for up to 2s; it bounds waiting for
// the kernel's softirq processing, it does not assert speed.
func eventually(cond func() bool) bool {
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

// reach pings dst from n once, up to three times, and returns the last
// error: it asserts reachability, not speed. On a loaded machine the
// first echo right after a link comes up can go unanswered while neighbour
// discovery is still on its way (seen with IPv6 under load).
func reach(n *nstest.NS, dst netip.Addr) error {
	var err error
	for range 3 {
		if err = n.Ping(dst, 1); err == nil {
			return nil
		}
	}
	return err
}
