package nstest

import (
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strconv"

	"github.com/vishvananda/netlink"
)

// pingCmd returns the ping command line: ping from PATH, else busybox.
func pingCmd() ([]string, error) {
	if p, err := exec.LookPath("ping"); err == nil {
		return []string{p}, nil
	}
	if p, err := exec.LookPath("busybox"); err == nil {
		return []string{p, "ping"}, nil
	}
	return nil, fmt.Errorf("nstest: no ping: install iputils-ping or busybox-static")
}

// HavePing reports what is missing for Ping to work, or nil.
func HavePing() error {
	_, err := pingCmd()
	return err
}

// Ping sends count ICMP echo requests from inside n to dst, waiting at
// most one second per reply; it returns nil when at least one reply came.
func (n *NS) Ping(dst netip.Addr, count int) error {
	argv, err := pingCmd()
	if err != nil {
		return err
	}
	fam := "-4"
	if dst.Is6() {
		fam = "-6"
	}
	argv = append(argv, fam, "-c", strconv.Itoa(count), "-W", "1", dst.String())
	_, err = n.Exec(argv[0], argv[1:]...)
	return err
}

// Neigh returns the link-layer address and NUD state that n's neighbour
// table holds for ip on ifname; ok is false when there is no entry with an
// address.
func (n *NS) Neigh(ifname string, ip netip.Addr) (mac net.HardwareAddr, state int, ok bool, err error) {
	h, err := n.NewHandle()
	if err != nil {
		return nil, 0, false, err
	}
	defer h.Close()
	link, err := h.LinkByName(ifname)
	if err != nil {
		return nil, 0, false, fmt.Errorf("nstest: %s: link %q: %w", n, ifname, err)
	}
	fam := netlink.FAMILY_V4
	if ip.Is6() {
		fam = netlink.FAMILY_V6
	}
	list, err := h.NeighList(link.Attrs().Index, fam)
	if err != nil {
		return nil, 0, false, fmt.Errorf("nstest: %s: neighbours of %q: %w", n, ifname, err)
	}
	for _, e := range list {
		a, _ := netip.AddrFromSlice(e.IP)
		if a.Unmap() == ip && len(e.HardwareAddr) > 0 {
			return e.HardwareAddr, e.State, true, nil
		}
	}
	return nil, 0, false, nil
}

// SetNeigh installs (replaces) a neighbour entry for ip with mac in the
// given NUD state (e.g. netlink.NUD_STALE) on ifname in n.
func (n *NS) SetNeigh(ifname string, ip netip.Addr, mac net.HardwareAddr, state int) error {
	h, err := n.NewHandle()
	if err != nil {
		return err
	}
	defer h.Close()
	link, err := h.LinkByName(ifname)
	if err != nil {
		return fmt.Errorf("nstest: %s: link %q: %w", n, ifname, err)
	}
	fam := netlink.FAMILY_V4
	if ip.Is6() {
		fam = netlink.FAMILY_V6
	}
	e := &netlink.Neigh{LinkIndex: link.Attrs().Index, Family: fam, State: state, IP: ip.AsSlice(), HardwareAddr: mac}
	if err := h.NeighSet(e); err != nil {
		return fmt.Errorf("nstest: %s: neighbour %s on %q: %w", n, ip, ifname, err)
	}
	return nil
}
