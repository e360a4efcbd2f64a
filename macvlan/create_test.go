package macvlan_test

import (
	"errors"
	"net"
	"slices"
	"testing"

	"github.com/medianet/medianet/internal/nstest"
	"github.com/medianet/medianet/macvlan"
	"github.com/vishvananda/netlink"
)

func TestCreateModes(t *testing.T) {
	for _, tc := range []struct {
		mode macvlan.Mode
		want netlink.MacvlanMode
	}{
		{"", netlink.MACVLAN_MODE_BRIDGE},
		{macvlan.ModeBridge, netlink.MACVLAN_MODE_BRIDGE},
		{macvlan.ModePrivate, netlink.MACVLAN_MODE_PRIVATE},
		{macvlan.ModeVEPA, netlink.MACVLAN_MODE_VEPA},
		{macvlan.ModePassthru, netlink.MACVLAN_MODE_PASSTHRU},
	} {
		t.Run(string(tc.mode), func(t *testing.T) {
			e := newEnv(t)
			hostBefore := links(t, e.lan.Host)
			spec := macvlan.Spec{Master: e.lan.Master, Mode: tc.mode}
			got, err := macvlan.Create(e.lan.Host.Path, spec, e.cont.Path, "eth0")
			if err != nil {
				t.Fatalf("Create: %v", err)
			}
			l, err := e.cont.Handle(t).LinkByName("eth0")
			if err != nil {
				t.Fatalf("link eth0 in container: %v", err)
			}
			mv, ok := l.(*netlink.Macvlan)
			if !ok {
				t.Fatalf("link kind = %s, want macvlan", l.Type())
			}
			if mv.Mode != tc.want {
				t.Errorf("mode = %v, want %v", mv.Mode, tc.want)
			}
			if got.Index != mv.Index || got.Name != "eth0" || got.MAC.String() != mv.HardwareAddr.String() {
				t.Errorf("Create returned %+v, kernel has %s index %d mac %s", got, mv.Name, mv.Index, mv.HardwareAddr)
			}
			if mv.TxQLen == 0 && mv.MTU == 0 {
				t.Errorf("link has zero MTU and TxQLen")
			}
			if after := links(t, e.lan.Host); !slices.Equal(after, hostBefore) {
				t.Errorf("host links changed: got %v, want %v", after, hostBefore)
			}
			if err := macvlan.Check(e.lan.Host.Path, spec, e.cont.Path, "eth0", macvlan.Config{}); err != nil {
				t.Errorf("Check: %v", err)
			}
		})
	}
}

func TestCreateMTUAndMAC(t *testing.T) {
	e := newEnv(t)
	mac, _ := net.ParseMAC("02:42:c0:a8:64:05")
	spec := macvlan.Spec{Master: e.lan.Master, MTU: 1400, MAC: mac}
	got, err := macvlan.Create(e.lan.Host.Path, spec, e.cont.Path, "net1")
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if got.MTU != 1400 {
		t.Errorf("MTU = %d, want 1400", got.MTU)
	}
	if got.MAC.String() != mac.String() {
		t.Errorf("MAC = %s, want %s", got.MAC, mac)
	}
	if err := macvlan.Check(e.lan.Host.Path, spec, e.cont.Path, "net1", macvlan.Config{}); err != nil {
		t.Errorf("Check: %v", err)
	}
	def, err := macvlan.Create(e.lan.Host.Path, macvlan.Spec{Master: e.lan.Master}, e.cont.Path, "net2")
	if err != nil {
		t.Fatalf("Create net2: %v", err)
	}
	if def.MTU != 1500 {
		t.Errorf("default MTU = %d, want the master's 1500", def.MTU)
	}
}

func TestCreateFailuresLeaveNoLink(t *testing.T) {
	e := newEnv(t)
	// "taken" already exists inside the container namespace.
	br := &netlink.Bridge{LinkAttrs: netlink.NewLinkAttrs()}
	br.Name = "taken"
	if err := e.cont.Handle(t).LinkAdd(br); err != nil {
		t.Fatalf("add bridge: %v", err)
	}
	mcast, _ := net.ParseMAC("01:00:5e:00:00:01")
	for _, tc := range []struct {
		name   string
		spec   macvlan.Spec
		ifname string
		want   error
	}{
		{"negative mtu", macvlan.Spec{MTU: -1}, "eth0", macvlan.ErrInvalidSpec},
		{"mtu above master", macvlan.Spec{MTU: 9000}, "eth0", macvlan.ErrInvalidSpec},
		{"mtu too small", macvlan.Spec{MTU: 20}, "eth0", macvlan.ErrInvalidSpec},
		{"unknown mode", macvlan.Spec{Mode: "source"}, "eth0", macvlan.ErrInvalidSpec},
		{"multicast mac", macvlan.Spec{MAC: mcast}, "eth0", macvlan.ErrInvalidSpec},
		{"master missing", macvlan.Spec{Master: "nosuchmaster0"}, "eth0", macvlan.ErrMasterNotFound},
		{"name taken in target", macvlan.Spec{}, "taken", macvlan.ErrLinkExists},
		{"ifname too long", macvlan.Spec{}, "averyveryverylongname", macvlan.ErrInvalidSpec},
		{"empty ifname", macvlan.Spec{}, "", macvlan.ErrInvalidSpec},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.spec.Master == "" {
				tc.spec.Master = e.lan.Master
			}
			hostBefore, contBefore := links(t, e.lan.Host), links(t, e.cont)
			_, err := macvlan.Create(e.lan.Host.Path, tc.spec, e.cont.Path, tc.ifname)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Create error = %v, want %v", err, tc.want)
			}
			if got := links(t, e.lan.Host); !slices.Equal(got, hostBefore) {
				t.Errorf("host links = %v, want %v", got, hostBefore)
			}
			if got := links(t, e.cont); !slices.Equal(got, contBefore) {
				t.Errorf("container links = %v, want %v", got, contBefore)
			}
		})
	}
	t.Run("target netns missing", func(t *testing.T) {
		_, err := macvlan.Create(e.lan.Host.Path, macvlan.Spec{Master: e.lan.Master}, "/run/netns/mvt-does-not-exist", "eth0")
		if !errors.Is(err, macvlan.ErrNetNSNotFound) {
			t.Fatalf("Create error = %v, want %v", err, macvlan.ErrNetNSNotFound)
		}
	})
}

func TestCreateInHostRootNamespace(t *testing.T) {
	nstest.SkipUnlessRoot(t)
	lan := nstest.NewRootLAN(t, "mvr")
	name := nstest.UniqueName("mvj")
	t.Cleanup(func() { _ = macvlan.Delete("", name) })
	got, err := macvlan.CreateInHost("", macvlan.Spec{Master: lan.Master}, name)
	if err != nil {
		t.Fatalf("CreateInHost: %v", err)
	}
	root := nstest.Root()
	l, err := root.Handle(t).LinkByName(name)
	if err != nil {
		t.Fatalf("link %q not in root namespace: %v", name, err)
	}
	if l.Attrs().Index != got.Index || l.Type() != "macvlan" {
		t.Errorf("link = %s index %d, want macvlan index %d", l.Type(), l.Attrs().Index, got.Index)
	}
	if _, err := macvlan.CreateInHost("", macvlan.Spec{Master: lan.Master}, name); !errors.Is(err, macvlan.ErrLinkExists) {
		t.Errorf("second CreateInHost error = %v, want %v", err, macvlan.ErrLinkExists)
	}
	if err := macvlan.Delete("", name); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := root.Handle(t).LinkByName(name); err == nil {
		t.Errorf("link %q still exists after Delete", name)
	}
}

func TestDeleteIdempotent(t *testing.T) {
	e := newEnv(t)
	if _, err := macvlan.Create(e.lan.Host.Path, macvlan.Spec{Master: e.lan.Master}, e.cont.Path, "eth0"); err != nil {
		t.Fatalf("Create: %v", err)
	}
	for i := range 2 {
		if err := macvlan.Delete(e.cont.Path, "eth0"); err != nil {
			t.Fatalf("Delete #%d: %v", i+1, err)
		}
	}
	if got := links(t, e.cont); !slices.Equal(got, []string{"lo"}) {
		t.Errorf("container links after Delete = %v, want [lo]", got)
	}
	if err := macvlan.Delete("/run/netns/mvt-gone-already", "eth0"); err != nil {
		t.Errorf("Delete in missing netns: %v, want nil", err)
	}
}

// TestDeleteTemp: what an ADD killed between Create's create and rename
// leaves (a macvlan named TempPrefix...) goes; the container's real link
// and a non-macvlan link that merely starts with the prefix stay.
func TestDeleteTemp(t *testing.T) {
	e := newEnv(t)
	spec := macvlan.Spec{Master: e.lan.Master}
	for _, name := range []string{"eth0", macvlan.TempPrefix + "0123456789"} {
		if _, err := macvlan.Create(e.lan.Host.Path, spec, e.cont.Path, name); err != nil {
			t.Fatalf("Create %s: %v", name, err)
		}
	}
	br := &netlink.Bridge{LinkAttrs: netlink.NewLinkAttrs()}
	br.Name = macvlan.TempPrefix + "bridge"
	if err := e.cont.Handle(t).LinkAdd(br); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := macvlan.DeleteTemp(e.cont.Path); err != nil {
			t.Fatalf("DeleteTemp #%d: %v", i+1, err)
		}
	}
	if got, want := links(t, e.cont), []string{"eth0", "lo", br.Name}; !slices.Equal(got, want) {
		t.Errorf("container links after DeleteTemp = %v, want %v", got, want)
	}
	if err := macvlan.DeleteTemp("/run/netns/mvt-gone-already"); err != nil {
		t.Errorf("DeleteTemp in missing netns: %v, want nil", err)
	}
}
