package nstest

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// LAN is a throwaway layer-2 segment: a bridge inside its own namespace,
// with a "host" whose Master interface is one veth end plugged into it.
type LAN struct {
	Host   *NS    // namespace holding Master (the root namespace for NewRootLAN)
	Master string // veth end in Host, up, usable as macvlan master
	Switch *NS    // namespace holding the bridge
	Bridge string // bridge name inside Switch
	// HostPort is the bridge port (in Switch) whose veth peer is Master:
	// set it down and Master loses its carrier.
	HostPort string
}

// NewLAN creates a LAN whose host is a fresh namespace named prefix+random;
// the master is called "mv0" inside it.
func NewLAN(t testing.TB, prefix string) *LAN {
	t.Helper()
	host := NewNS(t, prefix+"h")
	return newLAN(t, prefix, host, "mv0")
}

// NewRootLAN creates a LAN whose master lives in the root namespace under a
// unique name "mnt" plus random hex (never a pre-existing interface), for
// code that must create links in the namespace it runs in (Docker's Join).
// The veth pair is deleted when the test ends.
func NewRootLAN(t testing.TB, prefix string) *LAN {
	t.Helper()
	master := UniqueName("mnt")
	l := newLAN(t, prefix, Root(), master)
	t.Cleanup(func() {
		h, err := netlink.NewHandle()
		if err != nil {
			return
		}
		defer h.Close()
		if link, err := h.LinkByName(master); err == nil {
			_ = h.LinkDel(link)
		}
	})
	return l
}

func newLAN(t testing.TB, prefix string, host *NS, master string) *LAN {
	t.Helper()
	sw := NewNS(t, prefix+"s")
	l := &LAN{Host: host, Master: master, Switch: sw, Bridge: "br0"}
	h := sw.Handle(t)
	br := &netlink.Bridge{LinkAttrs: netlink.NewLinkAttrs()}
	br.Name = l.Bridge
	if err := h.LinkAdd(br); err != nil {
		t.Fatalf("nstest: bridge %q in %s: %v", l.Bridge, sw, err)
	}
	if err := h.LinkSetUp(br); err != nil {
		t.Fatalf("nstest: bridge %q up: %v", l.Bridge, err)
	}
	l.HostPort = l.plug(t, host, master)
	return l
}

// plug makes a veth pair with end name in ns and its peer enslaved to the
// bridge, both up, and returns the bridge port's name.
func (l *LAN) plug(t testing.TB, n *NS, name string) string {
	t.Helper()
	port := UniqueName("p")
	if err := Veth(n, name, l.Switch, port); err != nil {
		t.Fatalf("nstest: %v", err)
	}
	h := l.Switch.Handle(t)
	p, err := h.LinkByName(port)
	if err == nil {
		var br netlink.Link
		br, err = h.LinkByName(l.Bridge)
		if err == nil {
			err = h.LinkSetMaster(p, br)
		}
	}
	if err == nil {
		err = h.LinkSetUp(p)
	}
	if err != nil {
		t.Fatalf("nstest: bridge port %q: %v", port, err)
	}
	return port
}

// Veth creates a veth pair, end aName in a and end bName in b, and sets
// both up. On error nothing is left behind.
func Veth(a *NS, aName string, b *NS, bName string) (retErr error) {
	ha, err := a.NewHandle()
	if err != nil {
		return fmt.Errorf("veth %q: handle in %s: %w", aName, a, err)
	}
	defer ha.Close()
	bfd, err := netns.GetFromPath(b.Path)
	if err != nil {
		return fmt.Errorf("veth %q: open %s: %w", bName, b, err)
	}
	defer bfd.Close()
	v := &netlink.Veth{LinkAttrs: netlink.NewLinkAttrs(), PeerName: bName, PeerNamespace: netlink.NsFd(bfd)}
	v.Name = aName
	if err := ha.LinkAdd(v); err != nil {
		return fmt.Errorf("veth %q in %s, peer %q in %s: %w", aName, a, bName, b, err)
	}
	defer func() {
		if retErr != nil {
			_ = ha.LinkDel(v)
		}
	}()
	if err := ha.LinkSetUp(v); err != nil {
		return fmt.Errorf("veth %q up: %w", aName, err)
	}
	hb, err := b.NewHandle()
	if err != nil {
		return err
	}
	defer hb.Close()
	peer, err := hb.LinkByName(bName)
	if err != nil {
		return fmt.Errorf("veth peer %q: %w", bName, err)
	}
	if err := hb.LinkSetUp(peer); err != nil {
		return fmt.Errorf("veth peer %q up: %w", bName, err)
	}
	return nil
}

// AddPeer plugs a new namespace into the LAN through a veth end called
// "lan0" carrying addrs, and returns it. IPv6 addresses are added without
// duplicate address detection so they are usable at once.
func (l *LAN) AddPeer(t testing.TB, addrs ...netip.Prefix) *NS {
	t.Helper()
	peer := NewNS(t, "mnp")
	l.plug(t, peer, "lan0")
	AddAddrs(t, peer, "lan0", addrs...)
	return peer
}

// AddAddrs adds addrs to link ifname in n (IPv6 with IFA_F_NODAD).
func AddAddrs(t testing.TB, n *NS, ifname string, addrs ...netip.Prefix) {
	t.Helper()
	h := n.Handle(t)
	link, err := h.LinkByName(ifname)
	if err != nil {
		t.Fatalf("nstest: %s: link %q: %v", n, ifname, err)
	}
	for _, p := range addrs {
		a := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
		if p.Addr().Is6() {
			a.Flags = 0x02 // IFA_F_NODAD
		}
		if err := h.AddrAdd(link, a); err != nil {
			t.Fatalf("nstest: %s: add %s to %q: %v", n, p, ifname, err)
		}
	}
}

// Sysctl writes value to the sysctl key (dotted or slashed, below
// /proc/sys) inside n.
func (n *NS) Sysctl(key, value string) error {
	path := filepath.Join("/proc/sys", strings.ReplaceAll(key, ".", "/"))
	return n.Do(func() error {
		if err := os.WriteFile(path, []byte(value), 0o644); err != nil {
			return fmt.Errorf("sysctl %s=%s in %s: %w", key, value, n, err)
		}
		return nil
	})
}

// HaveVLAN reports nil when the kernel can make 802.1q links (it tries in
// a scratch namespace), else an error naming what is missing.
func HaveVLAN(t testing.TB) error {
	t.Helper()
	n := NewNS(t, "mnv")
	h := n.Handle(t)
	br := &netlink.Bridge{LinkAttrs: netlink.NewLinkAttrs()}
	br.Name = "vbase"
	if err := h.LinkAdd(br); err != nil {
		return fmt.Errorf("nstest: scratch bridge: %w", err)
	}
	attrs := netlink.NewLinkAttrs()
	attrs.Name, attrs.ParentIndex = "vbase.2", br.Index
	if err := h.LinkAdd(&netlink.Vlan{LinkAttrs: attrs, VlanId: 2}); err != nil {
		return fmt.Errorf("nstest: kernel cannot create 802.1q links (CONFIG_VLAN_8021Q / module 8021q missing): %w", err)
	}
	return nil
}
