package macvlan

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/vishvananda/netlink"
)

// AnnounceWhenConfigured waits, until ctx ends, for a link with MAC mac in
// the namespace nsPath to be up with every address of addrs, then
// announces them (Announce). It is for links someone else configures:
// Docker moves a driver's link into the container, renames it and sets
// its addresses after the driver's Join returned, and per-link sysctls
// such as arp_notify do not survive the move, so without this nothing
// tells the LAN that an address now has a new MAC (a router keeps the
// old one until its entry goes stale, tens of seconds).
func AnnounceWhenConfigured(ctx context.Context, nsPath string, mac net.HardwareAddr, addrs []netip.Addr) error {
	if len(addrs) == 0 {
		return nil
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		name, err := configuredLink(nsPath, mac, addrs)
		if err == nil && name != "" {
			return Announce(nsPath, name, addrs)
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = ctx.Err()
			}
			return fmt.Errorf("macvlan: announce %v from MAC %s in %q: not configured: %w", addrs, mac, nsPath, err)
		case <-tick.C:
		}
	}
}

// configuredLink returns the name of the link with MAC mac in nsPath when
// it is up and holds every address of addrs ("" while it is not).
func configuredLink(nsPath string, mac net.HardwareAddr, addrs []netip.Addr) (string, error) {
	fd, err := openNS(nsPath)
	if err != nil {
		return "", err
	}
	defer fd.Close()
	h, err := newHandleAt(fd)
	if err != nil {
		return "", err
	}
	defer h.Close()
	links, err := h.LinkList()
	if err != nil {
		return "", err
	}
	for _, l := range links {
		a := l.Attrs()
		if !bytes.Equal(a.HardwareAddr, mac) || a.Flags&net.FlagUp == 0 {
			continue
		}
		have, err := h.AddrList(l, netlink.FAMILY_ALL)
		if err != nil {
			return "", err
		}
		var got []netip.Addr
		for _, x := range have {
			if ip, ok := netip.AddrFromSlice(x.IP); ok {
				got = append(got, ip.Unmap())
			}
		}
		for _, want := range addrs {
			if !slices.Contains(got, want) {
				return "", nil
			}
		}
		return a.Name, nil
	}
	return "", nil
}
