package macvlan

import (
	"errors"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// handle is a netlink handle whose dumps are retried when the kernel marks
// them interrupted (NLM_F_DUMP_INTR), as containernetworking's netlinksafe
// does.
// Not netlinksafe: its Handle lacks AddrList, needed here per namespace, and it logs to the global logger.
type handle struct {
	*netlink.Handle
}

const maxDumpAttempts = 5

// newHandle opens a NETLINK_ROUTE-only handle in the calling thread's
// namespace (all families would cost three sockets per handle).
func newHandle() (handle, error) {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	return handle{h}, err
}

// newHandleAt opens a NETLINK_ROUTE-only handle in ns.
func newHandleAt(ns netns.NsHandle) (handle, error) {
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	return handle{h}, err
}

// Close releases the handle; a zero handle is fine.
func (h handle) Close() {
	if h.Handle != nil {
		h.Handle.Close()
	}
}

// retry runs f until it returns something other than ErrDumpInterrupted,
// at most maxDumpAttempts times; a last interrupted dump is returned as
// data without error, like netlinksafe.
func retry(f func() error) error {
	var err error
	for range maxDumpAttempts {
		if err = f(); !errors.Is(err, netlink.ErrDumpInterrupted) {
			return err
		}
	}
	return nil
}

func (h handle) LinkByName(name string) (netlink.Link, error) {
	var l netlink.Link
	err := retry(func() (err error) { l, err = h.Handle.LinkByName(name); return err })
	return l, err
}

func (h handle) LinkList() ([]netlink.Link, error) {
	var ls []netlink.Link
	err := retry(func() (err error) { ls, err = h.Handle.LinkList(); return err })
	return ls, err
}

func (h handle) AddrList(link netlink.Link, family int) ([]netlink.Addr, error) {
	var as []netlink.Addr
	err := retry(func() (err error) { as, err = h.Handle.AddrList(link, family); return err })
	return as, err
}

func (h handle) RouteList(link netlink.Link, family int) ([]netlink.Route, error) {
	var rs []netlink.Route
	err := retry(func() (err error) { rs, err = h.Handle.RouteList(link, family); return err })
	return rs, err
}
