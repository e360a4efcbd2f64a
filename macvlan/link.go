package macvlan

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// openNS opens the namespace at path ("" is the caller's own).
func openNS(path string) (netns.NsHandle, error) {
	if path == "" {
		h, err := netns.Get()
		if err != nil {
			return netns.None(), fmt.Errorf("macvlan: current netns: %w", err)
		}
		return h, nil
	}
	h, err := netns.GetFromPath(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return netns.None(), fmt.Errorf("macvlan: netns %q: %w", path, ErrNetNSNotFound)
		}
		return netns.None(), fmt.Errorf("macvlan: netns %q: %w", path, err)
	}
	return h, nil
}

// handleAt returns a netlink handle bound to the namespace at path.
func handleAt(path string) (handle, error) {
	if path == "" {
		h, err := newHandle()
		if err != nil {
			return h, fmt.Errorf("macvlan: netlink handle: %w", err)
		}
		return h, nil
	}
	fd, err := openNS(path)
	if err != nil {
		return handle{}, err
	}
	defer fd.Close()
	h, err := newHandleAt(fd)
	if err != nil {
		return h, fmt.Errorf("macvlan: netlink handle in netns %q: %w", path, err)
	}
	return h, nil
}

func isNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf) || errors.Is(err, unix.ENODEV)
}

// master finds spec.Master in h and validates spec against it.
func master(h handle, spec Spec) (netlink.Link, error) {
	if err := validName("master", spec.Master); err != nil {
		return nil, err
	}
	m, err := h.LinkByName(spec.Master)
	if isNotFound(err) {
		return nil, fmt.Errorf("macvlan: master %q: %w: create it or fix the master setting", spec.Master, ErrMasterNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("macvlan: master %q: %w", spec.Master, err)
	}
	if err := spec.validate(m.Attrs().MTU); err != nil {
		return nil, err
	}
	return m, nil
}

// newMacvlan builds the link request for spec on master m.
func newMacvlan(spec Spec, m netlink.Link, name string) *netlink.Macvlan {
	mode, _ := spec.Mode.netlink() // validated by master()
	attrs := netlink.NewLinkAttrs()
	attrs.Name = name
	attrs.ParentIndex = m.Attrs().Index
	attrs.MTU = spec.MTU
	if spec.MTU == 0 {
		attrs.MTU = m.Attrs().MTU
	}
	if spec.MAC != nil {
		attrs.HardwareAddr = spec.MAC
	}
	return &netlink.Macvlan{LinkAttrs: attrs, Mode: mode}
}

// TempPrefix starts the temporary name Create gives a link before renaming
// it: a link of that name in a container's namespace is an ADD that died
// between the two steps (DeleteTemp removes them).
const TempPrefix = "mvtmp"

func tempName() string {
	var b [5]byte
	_, _ = rand.Read(b[:])
	return TempPrefix + hex.EncodeToString(b[:]) // 15 bytes
}

// DeleteTemp removes the macvlans still under a temporary name (TempPrefix)
// from the namespace at nsPath: what a Create killed between creating and
// renaming its link leaves. A missing namespace is success.
func DeleteTemp(nsPath string) error {
	h, ok, err := existingHandleAt(nsPath)
	if !ok {
		return err
	}
	defer h.Close()
	links, err := h.LinkList()
	if err != nil {
		return fmt.Errorf("macvlan: list links in netns %q: %w", nsPath, err)
	}
	for _, l := range links {
		if l.Type() == "macvlan" && strings.HasPrefix(l.Attrs().Name, TempPrefix) {
			if err := deleteLink(h, l.Attrs().Name); err != nil {
				return err
			}
		}
	}
	return nil
}

// Create makes a macvlan on spec.Master (in hostNS, "" for the caller's
// namespace) directly inside targetNS under a temporary name and renames it
// to ifname there, so nothing ever appears in the host namespace. The link
// is left down. On any error no link is left.
func Create(hostNS string, spec Spec, targetNS, ifname string) (_ Link, retErr error) {
	hh, m, err := openMaster(hostNS, spec, "ifname", ifname)
	if err != nil {
		return Link{}, err
	}
	defer hh.Close()
	tfd, err := openNS(targetNS)
	if err != nil {
		return Link{}, err
	}
	defer tfd.Close()
	th, err := newHandleAt(tfd)
	if err != nil {
		return Link{}, fmt.Errorf("macvlan: netlink handle in netns %q: %w", targetNS, err)
	}
	defer th.Close()

	tmp := tempName()
	mv := newMacvlan(spec, m, tmp)
	mv.Namespace = netlink.NsFd(tfd)
	if err := hh.LinkAdd(mv); err != nil {
		return Link{}, fmt.Errorf("macvlan: create %q on %q: %w", ifname, spec.Master, err)
	}
	// Undo whatever name the link has reached; never delete a link of
	// that name that was there before (a clash on rename).
	name := tmp
	defer func() {
		if retErr != nil {
			_ = deleteLink(th, name)
		}
	}()
	link, err := th.LinkByName(tmp)
	if err != nil {
		return Link{}, fmt.Errorf("macvlan: create %q on %q: find %q: %w", ifname, spec.Master, tmp, err)
	}
	if err := th.LinkSetName(link, ifname); err != nil {
		if errors.Is(err, unix.EEXIST) {
			err = ErrLinkExists
		}
		return Link{}, fmt.Errorf("macvlan: create %q on %q: rename in netns %q: %w", ifname, spec.Master, targetNS, err)
	}
	name = ifname
	return readLink(th, ifname)
}

// CreateInHost makes a macvlan called name on spec.Master in hostNS itself
// ("" for the caller's namespace), left down, for Docker's Join, which
// moves and renames the link. On any error no link is left.
func CreateInHost(hostNS string, spec Spec, name string) (_ Link, retErr error) {
	hh, m, err := openMaster(hostNS, spec, "name", name)
	if err != nil {
		return Link{}, err
	}
	defer hh.Close()
	if err := hh.LinkAdd(newMacvlan(spec, m, name)); err != nil {
		if errors.Is(err, unix.EEXIST) {
			err = ErrLinkExists
		}
		return Link{}, fmt.Errorf("macvlan: create %q on %q: %w", name, spec.Master, err)
	}
	defer func() {
		if retErr != nil {
			_ = deleteLink(hh, name)
		}
	}()
	return readLink(hh, name)
}

// openMaster checks the new link's name (field names it in errors), and
// returns a handle in hostNS with spec.Master found and spec validated
// against it. The caller closes the handle.
func openMaster(hostNS string, spec Spec, field, name string) (handle, netlink.Link, error) {
	if err := validName(field, name); err != nil {
		return handle{}, nil, err
	}
	hh, err := handleAt(hostNS)
	if err != nil {
		return handle{}, nil, err
	}
	m, err := master(hh, spec)
	if err != nil {
		hh.Close()
		return handle{}, nil, err
	}
	return hh, m, nil
}

func readLink(h handle, name string) (Link, error) {
	l, err := h.LinkByName(name)
	if err != nil {
		return Link{}, fmt.Errorf("macvlan: read %q: %w", name, err)
	}
	a := l.Attrs()
	return Link{Name: a.Name, Index: a.Index, MAC: a.HardwareAddr, MTU: a.MTU}, nil
}

// Delete removes link ifname from the namespace at nsPath ("" for the
// caller's). A missing namespace or link is success.
func Delete(nsPath, ifname string) error {
	h, ok, err := existingHandleAt(nsPath)
	if !ok {
		return err
	}
	defer h.Close()
	return deleteLink(h, ifname)
}

// existingHandleAt is handleAt for what succeeds when the namespace is
// gone: then ok is false and err nil.
func existingHandleAt(nsPath string) (h handle, ok bool, err error) {
	h, err = handleAt(nsPath)
	switch {
	case errors.Is(err, ErrNetNSNotFound):
		return handle{}, false, nil
	case err != nil:
		return handle{}, false, err
	}
	return h, true, nil
}

func deleteLink(h handle, name string) error {
	l, err := h.LinkByName(name)
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("macvlan: delete %q: %w", name, err)
	}
	if err := h.LinkDel(l); err != nil && !isNotFound(err) {
		return fmt.Errorf("macvlan: delete %q: %w", name, err)
	}
	return nil
}
