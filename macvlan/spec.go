package macvlan

import (
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/vishvananda/netlink"
)

// Mode is a macvlan mode.
type Mode string

// The macvlan modes; the empty Mode means ModeBridge.
const (
	ModeBridge   Mode = "bridge"
	ModePrivate  Mode = "private"
	ModeVEPA     Mode = "vepa"
	ModePassthru Mode = "passthru"
)

// ParseMode returns the Mode named s ("" gives ModeBridge).
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case "":
		return ModeBridge, nil
	case ModeBridge, ModePrivate, ModeVEPA, ModePassthru:
		return m, nil
	}
	return "", fmt.Errorf("macvlan: mode %q: %w: use bridge, private, vepa or passthru", s, ErrInvalidSpec)
}

func (m Mode) netlink() (netlink.MacvlanMode, error) {
	mm, err := ParseMode(string(m))
	if err != nil {
		return 0, err
	}
	return map[Mode]netlink.MacvlanMode{
		ModeBridge:   netlink.MACVLAN_MODE_BRIDGE,
		ModePrivate:  netlink.MACVLAN_MODE_PRIVATE,
		ModeVEPA:     netlink.MACVLAN_MODE_VEPA,
		ModePassthru: netlink.MACVLAN_MODE_PASSTHRU,
	}[mm], nil
}

func modeOf(m netlink.MacvlanMode) Mode {
	switch m {
	case netlink.MACVLAN_MODE_BRIDGE:
		return ModeBridge
	case netlink.MACVLAN_MODE_PRIVATE:
		return ModePrivate
	case netlink.MACVLAN_MODE_VEPA:
		return ModeVEPA
	case netlink.MACVLAN_MODE_PASSTHRU:
		return ModePassthru
	}
	return Mode(fmt.Sprintf("mode-%d", m))
}

// Spec describes a macvlan link.
type Spec struct {
	Master string           // parent link in the host namespace, e.g. "eth1" or "eth1.100"
	Mode   Mode             // "" means bridge
	MTU    int              // 0 means the master's MTU; else 68..master's MTU
	MAC    net.HardwareAddr // nil lets the kernel pick; else a unicast 6-byte address
}

// Link is a created link as the kernel reports it.
type Link struct {
	Name  string
	Index int // in the namespace holding the link
	MAC   net.HardwareAddr
	MTU   int
}

// Route is a route through the container's link; a zero Gw means on-link.
type Route struct {
	Dst netip.Prefix
	Gw  netip.Addr
}

// Config is the layer-3 setup of a link inside its namespace.
type Config struct {
	Addresses []netip.Prefix // IPv4 and IPv6, prefix length as on the LAN
	Gateways  []netip.Addr   // a default route via each (at most one per family)
	Routes    []Route        // further routes
	SkipDAD   bool           // IPv6 addresses usable at once (IFA_F_NODAD, accept_dad=0)
}

// validName reports whether name can be a kernel interface name.
func validName(field, name string) error {
	switch {
	case name == "":
		return fmt.Errorf("macvlan: %s is empty: %w", field, ErrInvalidSpec)
	case len(name) > 15:
		return fmt.Errorf("macvlan: %s %q is longer than 15 bytes: %w", field, name, ErrInvalidSpec)
	case name == "." || name == ".." || strings.ContainsAny(name, "/: \t\n"):
		return fmt.Errorf("macvlan: %s %q contains '/', ':' or space: %w", field, name, ErrInvalidSpec)
	}
	return nil
}

// validate checks s against the master's MTU.
func (s Spec) validate(masterMTU int) error {
	if _, err := s.Mode.netlink(); err != nil {
		return err
	}
	if s.MTU < 0 || (s.MTU > 0 && s.MTU < 68) || s.MTU > masterMTU {
		return fmt.Errorf("macvlan: mtu %d on master %q: %w: use 68..%d or 0 for the master's",
			s.MTU, s.Master, ErrInvalidSpec, masterMTU)
	}
	if s.MAC != nil && (len(s.MAC) != 6 || s.MAC[0]&1 == 1 || allZero(s.MAC)) {
		return fmt.Errorf("macvlan: mac %q: %w: use a unicast 6-byte address", s.MAC, ErrInvalidSpec)
	}
	return nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// validate checks the addresses and routes of c.
func (c Config) validate() error {
	for _, p := range c.Addresses {
		if !p.IsValid() || p.Addr().Zone() != "" {
			return fmt.Errorf("macvlan: address %q: %w", p, ErrInvalidSpec)
		}
	}
	seen := map[bool]bool{}
	for _, g := range c.Gateways {
		if !g.IsValid() || g.Is4In6() {
			return fmt.Errorf("macvlan: gateway %q: %w", g, ErrInvalidSpec)
		}
		if seen[g.Is4()] {
			return fmt.Errorf("macvlan: gateway %s: %w: at most one per address family", g, ErrInvalidSpec)
		}
		seen[g.Is4()] = true
	}
	for _, r := range c.Routes {
		if !r.Dst.IsValid() || (r.Gw.IsValid() && r.Gw.Is4() != r.Dst.Addr().Is4()) {
			return fmt.Errorf("macvlan: route %s via %s: %w", r.Dst, r.Gw, ErrInvalidSpec)
		}
	}
	return nil
}
