package dhcp

import (
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/medianet/medianet/dhcp/dhcpapi"
)

var errAddrNotAvail = syscall.EADDRNOTAVAIL

// Record is one lease as dhcp.db keeps it: the attachment, where its link
// lives, the identity it speaks with, and the server's OFFER and last ACK
// as they came (everything else is read from them).
type Record struct {
	Key      dhcpapi.Key `json:"key"`
	Netns    string      `json:"netns"`
	ClientID []byte      `json:"clientID"`
	Hostname string      `json:"hostname,omitempty"`
	MAC      string      `json:"mac"`
	Sticky   bool        `json:"sticky,omitempty"`
	Offer    []byte      `json:"offer"`
	ACK      []byte      `json:"ack"`
	// Obtained is when the lease was first bound; Bound when the last
	// ACK came (the lease's times count from it).
	Obtained time.Time `json:"obtained"`
	Bound    time.Time `json:"bound"`
	// State is dhcpapi.StateBound or StateExpired.
	State string `json:"state"`
	// LinkByMAC: the link is the macvlan with MAC in Netns, whatever
	// its name (Docker renames it); Netns is empty until the workload's
	// link exists (Attach). Parent and Mode are where a short-lived
	// macvlan with MAC sends a RELEASE whose link is gone
	// (AcquireRequest.Parent).
	LinkByMAC bool   `json:"linkByMAC,omitempty"`
	Parent    string `json:"parent,omitempty"`
	Mode      string `json:"macvlanMode,omitempty"`
	// Routes are the link's routes when its address was taken off at
	// expiry, put back with it when the address is regained.
	Routes []KeptRoute `json:"routes,omitempty"`
}

// KeptRoute is a route of a lease's link (main table or another), as the
// plugin or the runtime set it.
type KeptRoute struct {
	Dst      netip.Prefix `json:"dst"`
	Gw       netip.Addr   `json:"gw,omitzero"`
	Src      netip.Addr   `json:"src,omitzero"`
	Scope    uint8        `json:"scope,omitempty"`
	Priority int          `json:"priority,omitempty"`
	Table    int          `json:"table,omitempty"`
}

func (r *Record) identity() identity { return identity{clientID: r.ClientID, hostname: r.Hostname} }

// link is where the lease's link is found inside Netns.
func (r *Record) link() linkRef {
	if r.LinkByMAC {
		mac, _ := net.ParseMAC(r.MAC)
		return linkRef{mac: mac}
	}
	return linkRef{name: r.Key.IfName}
}

// lease decodes the OFFER and ACK.
func (r *Record) lease() (*nclient4.Lease, error) {
	offer, err := dhcpv4.FromBytes(r.Offer)
	if err != nil {
		return nil, fmt.Errorf("lease of %s/%s: offer: %w", r.Key.ContainerID, r.Key.IfName, err)
	}
	ack, err := dhcpv4.FromBytes(r.ACK)
	if err != nil {
		return nil, fmt.Errorf("lease of %s/%s: ack: %w", r.Key.ContainerID, r.Key.IfName, err)
	}
	return &nclient4.Lease{Offer: offer, ACK: ack, CreationTime: r.Bound}, nil
}

// times are a lease's T1, T2 and expiry (RFC 2131 4.4.5 defaults: half
// and seven eighths of the lease time).
type times struct{ t1, t2, expiry time.Time }

func leaseTimes(ack *dhcpv4.DHCPv4, bound time.Time) times {
	lt := ack.IPAddressLeaseTime(time.Hour)
	t1 := ack.IPAddressRenewalTime(lt / 2)
	t2 := ack.IPAddressRebindingTime(lt * 7 / 8)
	if t1 > t2 {
		t1 = t2
	}
	if t2 > lt {
		t2 = lt
	}
	return times{t1: bound.Add(t1), t2: bound.Add(t2), expiry: bound.Add(lt)}
}

// address is the leased address with the subnet mask's length.
func address(ack *dhcpv4.DHCPv4) (netip.Prefix, error) {
	a, ok := netip.AddrFromSlice(ack.YourIPAddr)
	if !ok || !a.Unmap().Is4() || a.Unmap().IsUnspecified() {
		return netip.Prefix{}, fmt.Errorf("ack from %s carries no address", ack.ServerIdentifier())
	}
	bits := 32
	if m := ack.SubnetMask(); m != nil {
		if ones, total := m.Size(); total == 32 {
			bits = ones
		}
	}
	return netip.PrefixFrom(a.Unmap(), bits), nil
}

// view is the record as the API shows it.
func (r *Record) view() (dhcpapi.Lease, error) {
	l, err := r.lease()
	if err != nil {
		return dhcpapi.Lease{}, err
	}
	p, err := address(l.ACK)
	if err != nil {
		return dhcpapi.Lease{}, err
	}
	v := dhcpapi.Lease{Key: r.Key, Netns: r.Netns, Address: p.String(), Server: ipString(l.ACK.ServerIdentifier()),
		MAC: r.MAC, Client: fmt.Sprintf("%q", r.ClientID[min(1, len(r.ClientID)):]), Host: r.Hostname,
		Obtained: r.Obtained, Bound: r.Bound, Expires: leaseTimes(l.ACK, r.Bound).expiry, State: r.State, Domain: l.ACK.DomainName()}
	if rs := l.ACK.Router(); len(rs) > 0 {
		v.Gateway = ipString(rs[0])
	}
	for _, rt := range l.ACK.ClasslessStaticRoute() {
		if rt.Dest == nil {
			continue
		}
		gw := ""
		if rt.Router != nil && !rt.Router.IsUnspecified() {
			gw = ipString(rt.Router)
		}
		v.Routes = append(v.Routes, dhcpapi.Route{Dst: rt.Dest.String(), GW: gw})
	}
	for _, d := range l.ACK.DNS() {
		v.DNS = append(v.DNS, ipString(d))
	}
	return v, nil
}

func ipString(ip net.IP) string {
	if a, ok := netip.AddrFromSlice(ip); ok {
		return a.Unmap().String()
	}
	return ""
}
