package macvlan_test

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"

	"github.com/medianet/medianet/internal/nstest"
	"github.com/medianet/medianet/macvlan"
	"github.com/vishvananda/netns"
)

// TestDockerStyleJoin does what Docker does with a Join reply: the driver
// creates the link in its own (root) namespace under a temporary name,
// Docker moves it into the sandbox and renames it, then configures it.
func TestDockerStyleJoin(t *testing.T) {
	nstest.SkipUnlessRoot(t)
	lan := nstest.NewRootLAN(t, "mvd")
	peer := lan.AddPeer(t, pfx("10.87.0.254/24"))
	sandbox := nstest.NewNS(t, "mvds")
	tmp := nstest.UniqueName("mvj")
	t.Cleanup(func() { _ = macvlan.Delete("", tmp) })
	link, err := macvlan.CreateInHost("", macvlan.Spec{Master: lan.Master}, tmp)
	if err != nil {
		t.Fatalf("CreateInHost: %v", err)
	}
	// Docker's part.
	root := nstest.Root().Handle(t)
	l, err := root.LinkByName(tmp)
	if err != nil {
		t.Fatal(err)
	}
	fd, err := netns.GetFromPath(sandbox.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	if err := root.LinkSetNsFd(l, int(fd)); err != nil {
		t.Fatalf("move into sandbox: %v", err)
	}
	sh := sandbox.Handle(t)
	if l, err = sh.LinkByName(tmp); err != nil || sh.LinkSetName(l, "eth0") != nil {
		t.Fatalf("rename in sandbox: %v", err)
	}
	cfg := macvlan.Config{Addresses: []netip.Prefix{pfx("10.87.0.5/24")}, Gateways: []netip.Addr{addr("10.87.0.254")}}
	if err := macvlan.Configure(sandbox.Path, "eth0", cfg); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	if err := macvlan.Check("", macvlan.Spec{Master: lan.Master, MAC: link.MAC}, sandbox.Path, "eth0", cfg); err != nil {
		t.Errorf("Check: %v", err)
	}
	if err := peer.Ping(addr("10.87.0.5"), 2); err != nil {
		t.Errorf("peer cannot reach joined container: %v", err)
	}
}

// TestConcurrentCreate: the daemon creates links from many goroutines;
// per-namespace handles keep them apart.
func TestConcurrentCreate(t *testing.T) {
	nstest.SkipUnlessRoot(t)
	lan := nstest.NewLAN(t, "mvt")
	const n = 8
	conts := make([]*nstest.NS, n)
	for i := range conts {
		conts[i] = nstest.NewNS(t, "mvc")
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			if _, err := macvlan.Create(lan.Host.Path, macvlan.Spec{Master: lan.Master}, conts[i].Path, "eth0"); err != nil {
				errs[i] = err
				return
			}
			errs[i] = macvlan.Configure(conts[i].Path, "eth0", macvlan.Config{
				Addresses: []netip.Prefix{netip.MustParsePrefix(fmt.Sprintf("10.88.0.%d/24", i+1))}})
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if err := conts[0].Ping(addr(fmt.Sprintf("10.88.0.%d", n)), 2); err != nil {
		t.Errorf("container 1 cannot reach container %d: %v", n, err)
	}
}

func TestConfigureErrors(t *testing.T) {
	e := newEnv(t)
	if _, err := macvlan.Create(e.lan.Host.Path, macvlan.Spec{Master: e.lan.Master}, e.cont.Path, "eth0"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		ifname string
		cfg    macvlan.Config
		want   error
	}{
		{"two v4 gateways", "eth0", macvlan.Config{Gateways: []netip.Addr{addr("10.1.0.1"), addr("10.1.0.2")}}, macvlan.ErrInvalidSpec},
		{"gateway off-link", "eth0", macvlan.Config{Addresses: []netip.Prefix{pfx("10.89.0.5/24")}, Gateways: []netip.Addr{addr("10.200.0.1")}}, nil},
		{"missing link", "nope0", macvlan.Config{}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := macvlan.Configure(e.cont.Path, tc.ifname, tc.cfg)
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Errorf("Configure error = %v, want %v", err, tc.want)
			}
		})
	}
}
