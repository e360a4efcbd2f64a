package macvlan

import (
	"errors"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// VLANName returns the name of master's 802.1q link for vlan,
// "<master>.<vlan>".
func VLANName(master string, vlan int) string { return fmt.Sprintf("%s.%d", master, vlan) }

// EnsureVLAN makes sure the 802.1q link "<master>.<vlan>" exists on master
// in hostNS ("" for the caller's) and is up, creating it when missing, and
// returns its name for use as Spec.Master. created tells whether this call
// made it (so a caller can DeleteVLAN it later). An existing link of that
// name that is not this VLAN on this master is an ErrNotVLAN error.
//
// The VLAN link is shared: two first ADDs on a VLAN network may run at
// once. It is created up in one request, so no later step can fail and
// need undoing; when another process creates it between this call's
// lookup and its create (EEXIST), this call adopts that link after
// checking it. EnsureVLAN never deletes a link.
func EnsureVLAN(hostNS, master string, vlan int) (name string, created bool, err error) {
	if vlan < 1 || vlan > 4094 {
		return "", false, fmt.Errorf("macvlan: vlan %d on %q: %w: use 1..4094", vlan, master, ErrInvalidSpec)
	}
	name = VLANName(master, vlan)
	if err := validName("vlan link name", name); err != nil {
		return "", false, err
	}
	h, err := handleAt(hostNS)
	if err != nil {
		return "", false, err
	}
	defer h.Close()
	created, err = ensureVLAN(h, master, vlan)
	if err != nil {
		return "", false, err
	}
	return name, created, nil
}

// vlanLinks is the part of a netlink handle ensureVLAN uses: the seam
// where unit tests play a concurrent creator on kernels without 802.1q.
type vlanLinks interface {
	LinkByName(name string) (netlink.Link, error)
	LinkAdd(link netlink.Link) error
	LinkSetUp(link netlink.Link) error
}

// vlanAttempts bounds lookup-create rounds: a round ends in EEXIST only
// when another process made the link in between, and the next lookup
// finds it unless that process deleted it again at once.
const vlanAttempts = 3

// ensureVLAN is EnsureVLAN on h, whose namespace holds master.
func ensureVLAN(h vlanLinks, master string, vlan int) (created bool, err error) {
	name := VLANName(master, vlan)
	m, err := h.LinkByName(master)
	if isNotFound(err) {
		return false, fmt.Errorf("macvlan: vlan %d: master %q: %w", vlan, master, ErrMasterNotFound)
	} else if err != nil {
		return false, fmt.Errorf("macvlan: vlan %d: master %q: %w", vlan, master, err)
	}
	for range vlanAttempts {
		l, err := h.LinkByName(name)
		switch {
		case err == nil:
			return false, adoptVLAN(h, l, m, vlan)
		case !isNotFound(err):
			return false, fmt.Errorf("macvlan: vlan link %q: %w", name, err)
		}
		attrs := netlink.NewLinkAttrs()
		attrs.Name = name
		attrs.ParentIndex = m.Attrs().Index
		attrs.Flags = net.FlagUp
		err = h.LinkAdd(&netlink.Vlan{LinkAttrs: attrs, VlanId: vlan, VlanProtocol: netlink.VLAN_PROTOCOL_8021Q})
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, unix.EOPNOTSUPP):
			return false, fmt.Errorf("macvlan: create vlan %q on %q: %w (the kernel lacks 802.1q: load module 8021q)", name, master, err)
		case !errors.Is(err, unix.EEXIST):
			return false, fmt.Errorf("macvlan: create vlan %q on %q: %w", name, master, err)
		}
		// EEXIST: another process made it since the lookup; adopt it.
	}
	return false, fmt.Errorf("macvlan: create vlan %q on %q: %w: the kernel reports vlan %d on %q exists, but not under this name: remove the other link",
		name, master, unix.EEXIST, vlan, master)
}

// adoptVLAN checks that l is 802.1q vlan on master m, and sets it up.
func adoptVLAN(h vlanLinks, l, m netlink.Link, vlan int) error {
	name := l.Attrs().Name
	v, ok := l.(*netlink.Vlan)
	if !ok || v.VlanId != vlan || v.ParentIndex != m.Attrs().Index {
		return fmt.Errorf("macvlan: vlan link %q: %w (kind %s): want vlan %d on %q", name, ErrNotVLAN, l.Type(), vlan, m.Attrs().Name)
	}
	if l.Attrs().Flags&net.FlagUp == 0 {
		if err := h.LinkSetUp(l); err != nil {
			return fmt.Errorf("macvlan: vlan link %q: set up: %w", name, err)
		}
	}
	return nil
}

// DeleteVLAN deletes the 802.1q link name in hostNS unless a link in hostNS
// still has it as parent (ErrInUse). A missing link is success; a link that
// is not a VLAN is never deleted (ErrNotVLAN). Macvlans already moved into
// other namespaces are invisible here and die with the parent, so the
// caller deletes a VLAN only when its own records show no user left.
func DeleteVLAN(hostNS, name string) error {
	h, err := handleAt(hostNS)
	if err != nil {
		return err
	}
	defer h.Close()
	l, err := h.LinkByName(name)
	if isNotFound(err) {
		return nil
	} else if err != nil {
		return fmt.Errorf("macvlan: delete vlan %q: %w", name, err)
	}
	if _, ok := l.(*netlink.Vlan); !ok {
		return fmt.Errorf("macvlan: delete vlan %q: %w (kind %s)", name, ErrNotVLAN, l.Type())
	}
	if users, err := children(h, l.Attrs().Index); err != nil {
		return err
	} else if len(users) > 0 {
		return fmt.Errorf("macvlan: delete vlan %q: %w by %q", name, ErrInUse, users)
	}
	return deleteLink(h, name)
}

// children lists the links in h whose parent is index.
func children(h handle, index int) ([]string, error) {
	links, err := h.LinkList()
	if err != nil {
		return nil, fmt.Errorf("macvlan: list links: %w", err)
	}
	var names []string
	for _, c := range links {
		if c.Attrs().ParentIndex == index && c.Attrs().Index != index && c.Attrs().NetNsID < 0 {
			names = append(names, c.Attrs().Name)
		}
	}
	return names, nil
}
