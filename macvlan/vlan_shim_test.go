package macvlan_test

import (
	"errors"
	"net/netip"
	"slices"
	"sync"
	"testing"

	"github.com/medianet/medianet/internal/nstest"
	"github.com/medianet/medianet/macvlan"
	"github.com/vishvananda/netlink"
)

// TestVLANErrors: bad VLAN requests fail with the right sentinel and
// leave no link; this runs also on kernels without 802.1q.
func TestVLANErrors(t *testing.T) {
	nstest.SkipUnlessRoot(t)
	lan := nstest.NewLAN(t, "mvt")
	before := links(t, lan.Host)
	for _, tc := range []struct {
		name   string
		master string
		vlan   int
		want   error
	}{
		{"vlan 0", lan.Master, 0, macvlan.ErrInvalidSpec},
		{"vlan 4095", lan.Master, 4095, macvlan.ErrInvalidSpec},
		{"master missing", "nosuchmaster0", 7, macvlan.ErrMasterNotFound},
		{"name too long", "abcdefghijklm", 100, macvlan.ErrInvalidSpec},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := macvlan.EnsureVLAN(lan.Host.Path, tc.master, tc.vlan); !errors.Is(err, tc.want) {
				t.Errorf("EnsureVLAN(%q, %d) error = %v, want %v", tc.master, tc.vlan, err, tc.want)
			}
		})
	}
	if err := macvlan.DeleteVLAN(lan.Host.Path, lan.Master); !errors.Is(err, macvlan.ErrNotVLAN) {
		t.Errorf("DeleteVLAN(master) error = %v, want %v", err, macvlan.ErrNotVLAN)
	}
	if err := macvlan.DeleteVLAN(lan.Host.Path, "mv0.999"); err != nil {
		t.Errorf("DeleteVLAN(missing) error = %v, want nil", err)
	}
	if nstest.HaveVLAN(t) != nil {
		// Creation itself fails here: it must fail cleanly.
		if _, _, err := macvlan.EnsureVLAN(lan.Host.Path, lan.Master, 100); err == nil {
			t.Errorf("EnsureVLAN succeeded on a kernel without 802.1q")
		}
	}
	if got := links(t, lan.Host); !slices.Equal(got, before) {
		t.Errorf("host links = %v, want %v", got, before)
	}
}

// TestVLANParent: EnsureVLAN makes mv0.100; a container on it reaches a
// peer that sits on VLAN 100 of the same LAN, so its frames are tagged.
func TestVLANParent(t *testing.T) {
	nstest.SkipUnlessRoot(t)
	if err := nstest.HaveVLAN(t); err != nil {
		t.Skip(err)
	}
	lan := nstest.NewLAN(t, "mvt")
	peer := lan.AddPeer(t)
	ph := peer.Handle(t)
	lan0, err := ph.LinkByName("lan0")
	if err != nil {
		t.Fatal(err)
	}
	attrs := netlink.NewLinkAttrs()
	attrs.Name, attrs.ParentIndex = "lan0.100", lan0.Attrs().Index
	if err := ph.LinkAdd(&netlink.Vlan{LinkAttrs: attrs, VlanId: 100}); err != nil {
		t.Fatalf("peer vlan: %v", err)
	}
	if l, err := ph.LinkByName("lan0.100"); err != nil || ph.LinkSetUp(l) != nil {
		t.Fatalf("peer vlan up: %v", err)
	}
	nstest.AddAddrs(t, peer, "lan0.100", pfx("10.82.0.254/24"))

	name, created, err := macvlan.EnsureVLAN(lan.Host.Path, lan.Master, 100)
	if err != nil || name != "mv0.100" || !created {
		t.Fatalf("EnsureVLAN = %q, %v, %v; want mv0.100, true, nil", name, created, err)
	}
	if name2, created2, err := macvlan.EnsureVLAN(lan.Host.Path, lan.Master, 100); err != nil || name2 != name || created2 {
		t.Errorf("second EnsureVLAN = %q, %v, %v; want %q, false, nil", name2, created2, err, name)
	}
	vc := nstest.NewNS(t, "mvc")
	if _, err := macvlan.Create(lan.Host.Path, macvlan.Spec{Master: name}, vc.Path, "eth0"); err != nil {
		t.Fatalf("Create on %s: %v", name, err)
	}
	if err := macvlan.Configure(vc.Path, "eth0", macvlan.Config{Addresses: []netip.Prefix{pfx("10.82.0.10/24")}}); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	if err := vc.Ping(addr("10.82.0.254"), 2); err != nil {
		t.Errorf("container on vlan 100 cannot reach peer on vlan 100: %v", err)
	}
	// A host-side user of the VLAN blocks its deletion.
	shim := macvlan.ShimSpec{Name: "vshim", Master: name}
	if err := macvlan.EnsureShim(lan.Host.Path, shim); err != nil {
		t.Fatalf("EnsureShim on vlan: %v", err)
	}
	if err := macvlan.DeleteVLAN(lan.Host.Path, name); !errors.Is(err, macvlan.ErrInUse) {
		t.Errorf("DeleteVLAN with shim error = %v, want %v", err, macvlan.ErrInUse)
	}
	if err := macvlan.DeleteShim(lan.Host.Path, shim.Name); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := macvlan.DeleteVLAN(lan.Host.Path, name); err != nil {
			t.Fatalf("DeleteVLAN #%d: %v", i+1, err)
		}
	}
	if got := links(t, lan.Host); slices.Contains(got, name) {
		t.Errorf("host links after DeleteVLAN = %v, still has %q", got, name)
	}
}

// TestVLANFirstADDsRace: several first ADDs on one VLAN network at once
// (goroutines here, separate processes in production; the kernel sees
// the same races) all get their container link on the VLAN parent, and
// exactly one reports it created the parent. TestEnsureVLANSeam covers
// the same logic on kernels without 802.1q.
func TestVLANFirstADDsRace(t *testing.T) {
	nstest.SkipUnlessRoot(t)
	if err := nstest.HaveVLAN(t); err != nil {
		t.Skip(err)
	}
	lan := nstest.NewLAN(t, "mvt")
	const n = 6
	conts := make([]*nstest.NS, n)
	for i := range conts {
		conts[i] = nstest.NewNS(t, "mvc")
	}
	start := make(chan struct{})
	errs := make([]error, n)
	created := make([]bool, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			var name string
			if name, created[i], errs[i] = macvlan.EnsureVLAN(lan.Host.Path, lan.Master, 100); errs[i] == nil {
				_, errs[i] = macvlan.Create(lan.Host.Path, macvlan.Spec{Master: name}, conts[i].Path, "eth0")
			}
		})
	}
	close(start)
	wg.Wait()
	made := 0
	for i := range n {
		if errs[i] != nil {
			t.Errorf("ADD %d: %v", i, errs[i])
		}
		if created[i] {
			made++
		}
	}
	if made != 1 {
		t.Errorf("%d ADDs reported creating %s.100, want 1", made, lan.Master)
	}
}

// TestHostShim: the host (whose master carries its LAN address) cannot
// reach its own macvlan container until the shim and route are there.
func TestHostShim(t *testing.T) {
	for _, f := range []struct {
		name       string
		host, cont netip.Prefix
		shimAddrs  []netip.Prefix
	}{
		{"ipv4", pfx("10.83.0.1/24"), pfx("10.83.0.10/24"), nil},
		{"ipv4 with shim address", pfx("10.83.0.1/24"), pfx("10.83.0.10/24"), []netip.Prefix{pfx("10.83.0.2/32")}},
		{"ipv6", pfx("fd00:83::1/64"), pfx("fd00:83::10/64"), []netip.Prefix{pfx("fd00:83::2/128")}},
	} {
		t.Run(f.name, func(t *testing.T) {
			nstest.SkipUnlessRoot(t)
			lan := nstest.NewLAN(t, "mvt")
			nstest.AddAddrs(t, lan.Host, lan.Master, f.host)
			cont := addContainer(t, lan, macvlan.ModeBridge, macvlan.Config{Addresses: []netip.Prefix{f.cont}, SkipDAD: true})
			ip := f.cont.Addr()
			if err := lan.Host.Ping(ip, 1); err == nil {
				t.Fatalf("host reached its macvlan container without a shim; the test cannot tell the shim works")
			}
			shim := macvlan.ShimSpec{Name: "mnshim0", Master: lan.Master, Addresses: f.shimAddrs}
			for i := range 2 {
				if err := macvlan.EnsureShim(lan.Host.Path, shim); err != nil {
					t.Fatalf("EnsureShim #%d: %v", i+1, err)
				}
				if err := macvlan.AddShimRoute(lan.Host.Path, shim.Name, ip); err != nil {
					t.Fatalf("AddShimRoute #%d: %v", i+1, err)
				}
			}
			if err := lan.Host.Ping(ip, 2); err != nil {
				t.Errorf("host cannot reach container %s through the shim: %v", ip, err)
			}
			back := f.host.Addr()
			if len(f.shimAddrs) > 0 {
				back = f.shimAddrs[0].Addr()
			}
			if err := cont.Ping(back, 1); err != nil {
				t.Errorf("container cannot reach host %s through the shim: %v", back, err)
			}
			for i := range 2 {
				if err := macvlan.DelShimRoute(lan.Host.Path, shim.Name, ip); err != nil {
					t.Fatalf("DelShimRoute #%d: %v", i+1, err)
				}
			}
			if err := macvlan.DeleteShim(lan.Host.Path, shim.Name); err != nil {
				t.Fatal(err)
			}
			if err := macvlan.DeleteShim(lan.Host.Path, shim.Name); err != nil {
				t.Errorf("second DeleteShim: %v", err)
			}
			if err := macvlan.AddShimRoute(lan.Host.Path, shim.Name, ip); !errors.Is(err, macvlan.ErrLinkNotFound) {
				t.Errorf("AddShimRoute without shim error = %v, want %v", err, macvlan.ErrLinkNotFound)
			}
		})
	}
}

func TestEnsureShimRefusesForeignLink(t *testing.T) {
	nstest.SkipUnlessRoot(t)
	lan := nstest.NewLAN(t, "mvt")
	br := &netlink.Bridge{LinkAttrs: netlink.NewLinkAttrs()}
	br.Name = "notashim"
	if err := lan.Host.Handle(t).LinkAdd(br); err != nil {
		t.Fatal(err)
	}
	err := macvlan.EnsureShim(lan.Host.Path, macvlan.ShimSpec{Name: "notashim", Master: lan.Master})
	if !errors.Is(err, macvlan.ErrMismatch) {
		t.Errorf("EnsureShim over a bridge error = %v, want %v", err, macvlan.ErrMismatch)
	}
	if got := links(t, lan.Host); !slices.Contains(got, "notashim") {
		t.Errorf("EnsureShim deleted a link it did not create: %v", got)
	}
}
