package doctor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// ConflictProbes is how many probes an address gets, in the first half
// of the conflict check's time: RFC 5227 sends three over one to two
// seconds and waits one more; a container's ADD gets a shorter window,
// with two probes so that one lost frame does not hide a host.
const ConflictProbes = 2

// ErrCannotProbe: the parent cannot carry a probe now (missing, down, no
// carrier); nobody on the LAN can answer either. The message says which.
var ErrCannotProbe = errors.New("cannot probe")

// Answer is an address another host answered for, by its MAC.
type Answer struct {
	Addr netip.Addr
	MAC  net.HardwareAddr
	// At is when the answer came.
	At time.Time
}

// ProbeLink asks, from link ifname in the namespace at nsPath ("" for
// the caller's), whether any host on the LAN holds one of addrs: an
// RFC 5227 ARP probe (sender IP 0.0.0.0) per IPv4 address and the
// neighbour solicitation of duplicate address detection (from ::, to the
// solicited-node group) per IPv6 address, ConflictProbes of each in the
// first half of timeout, all addresses at once. It returns the answers
// (none: nobody holds them). The link must have no address yet (a
// container's link between its creation and its configuration): the
// probes teach nobody a cache entry. A link that is down is brought up
// for the probe and down again, so that its configuration then announces
// its addresses as it always does.
func ProbeLink(ctx context.Context, nsPath, ifname string, addrs []netip.Addr, timeout time.Duration) ([]Answer, error) {
	if len(addrs) == 0 {
		return nil, nil
	}
	fd, err := openNS(nsPath)
	if err != nil {
		return nil, err
	}
	defer fd.Close()
	h, err := netlink.NewHandleAt(fd, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("doctor: netlink handle in %q: %w", nsPath, err)
	}
	defer h.Close()
	link, err := h.LinkByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("doctor: probe from %q in %q: %w", ifname, nsPath, err)
	}
	if link.Attrs().Flags&net.FlagUp == 0 {
		if err := h.LinkSetUp(link); err != nil {
			return nil, fmt.Errorf("doctor: probe from %q: set up: %w", ifname, err)
		}
		defer h.LinkSetDown(link)
	}
	s := side{ns: fd, ifname: ifname, ifindex: link.Attrs().Index, mac: link.Attrs().HardwareAddr}
	return s.probe(ctx, addrs, timeout)
}

// ProbeParent is ProbeLink for a caller that has no link yet (Docker's
// RequestAddress): the probes go from a macvlan with a fresh MAC on
// parent (in the namespace at hostNS), in an anonymous namespace of its
// own, as the doctor's run makes it, gone when ProbeParent returns or the
// process dies. A parent missing, down or without carrier, or a process
// without the capabilities to make them, is ErrCannotProbe.
func ProbeParent(ctx context.Context, hostNS, parent string, addrs []netip.Addr, timeout time.Duration) ([]Answer, error) {
	if len(addrs) == 0 {
		return nil, nil
	}
	l, verdict, err := setUp(Options{HostNS: hostNS, Parent: parent})
	if errors.Is(err, os.ErrPermission) {
		return nil, fmt.Errorf("doctor: probe on %q: %w: a namespace and a macvlan of its own need CAP_SYS_ADMIN, CAP_NET_ADMIN and CAP_NET_RAW (%v)", parent, ErrCannotProbe, err)
	}
	if err != nil {
		return nil, err
	}
	defer l.close()
	if verdict != "" {
		return nil, fmt.Errorf("doctor: probe on %q: %s: %w", parent, verdict, ErrCannotProbe)
	}
	return l.test.probe(ctx, addrs, timeout)
}

// probe asks for every address of addrs at once from s, one socket each.
func (s side) probe(ctx context.Context, addrs []netip.Addr, timeout time.Duration) ([]Answer, error) {
	opts := Options{Timeout: timeout, Probes: ConflictProbes}
	answers := make([]*Answer, len(addrs))
	errs := make([]error, len(addrs))
	var wg sync.WaitGroup
	for i, a := range addrs {
		proto := uint16(unix.ETH_P_IPV6)
		if a.Is4() {
			proto = unix.ETH_P_ARP
		}
		sock, err := s.open(proto)
		if err != nil {
			errs[i] = err
			continue
		}
		wg.Go(func() {
			defer sock.close()
			start := time.Now()
			r := sock.exchange(ctx, opts, a, 60)
			errs[i] = r.err
			if r.ok {
				answers[i] = &Answer{Addr: a, MAC: r.mac, At: start.Add(r.rtt)}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	var out []Answer
	for _, a := range answers {
		if a != nil {
			out = append(out, *a)
		}
	}
	return out, ctx.Err()
}
