package dockerplugin

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/medianet/medianet/ipam"
	"github.com/medianet/medianet/macvlan"
)

// Network driver options (-o KEY=VALUE of docker network create).
const (
	optParent = "parent"
	optMode   = "macvlan_mode"
	optVLAN   = "vlan"
)

// IPAM driver options (--ipam-opt KEY=VALUE).
const (
	optBlockSize  = "block-size"
	optNodeRanges = "node-ranges"
	// optConflictCheck and optConflictRetry: conflict.go.
	optConflictCheck = "conflict-check"
	optConflictRetry = "conflict-retry"
	// optMode=dhcp: addresses are leases from the LAN's DHCP server (dhcp.go).
	optIPAMMode = "mode"
	modeDHCP    = "dhcp"
)

// netOptions are a network's driver options, validated.
type netOptions struct {
	Parent string       `json:"parent"`
	Mode   macvlan.Mode `json:"mode"`
	VLAN   int          `json:"vlan,omitempty"`
}

// master is the link the network's macvlans sit on: the parent, or its
// 802.1q link when a VLAN is set.
func (o netOptions) master() string {
	if o.VLAN != 0 {
		return macvlan.VLANName(o.Parent, o.VLAN)
	}
	return o.Parent
}

// parseNetOptions reads the user's -o options. Keys Docker itself sets
// (com.docker.*) are ignored; any other unknown key is an error, so a typo
// such as "-o partent=eth1" is not silently dropped.
func parseNetOptions(opts map[string]string) (netOptions, error) {
	var o netOptions
	for k, v := range opts {
		switch k {
		case optParent:
			o.Parent = strings.TrimSpace(v)
		case optMode:
			m, err := macvlan.ParseMode(v)
			if err != nil {
				return o, fmt.Errorf("medianet: -o %s=%q: %w: use bridge, private, vepa or passthru", optMode, v, ErrBadOption)
			}
			o.Mode = m
		case optVLAN:
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 4094 {
				return o, fmt.Errorf("medianet: -o %s=%q: %w: use a VLAN ID 1..4094", optVLAN, v, ErrBadOption)
			}
			o.VLAN = n
		default:
			if !strings.HasPrefix(k, "com.docker.") {
				return o, fmt.Errorf("medianet: unknown option -o %s: %w: use %s, %s or %s", k, ErrBadOption, optParent, optMode, optVLAN)
			}
		}
	}
	if o.Parent == "" {
		return o, fmt.Errorf("medianet: -o %s is required: %w: name the host interface on the LAN, e.g. -o parent=eth1", optParent, ErrBadOption)
	}
	if len(o.Parent) > 15 || strings.ContainsAny(o.Parent, "/ \t\n:") {
		return o, fmt.Errorf("medianet: -o %s=%q: %w: not an interface name", optParent, o.Parent, ErrBadOption)
	}
	if o.VLAN != 0 && len(o.master()) > 15 {
		return o, fmt.Errorf("medianet: -o %s=%q with -o %s=%d: %w: VLAN link name %q is longer than 15 characters", optParent, o.Parent, optVLAN, o.VLAN, ErrBadOption, o.master())
	}
	if o.Mode == "" {
		o.Mode = macvlan.ModeBridge
	}
	return o, nil
}

// stringOptions flattens Docker's generic options (map of any) to strings.
func stringOptions(generic any) (map[string]string, error) {
	out := map[string]string{}
	if generic == nil {
		return out, nil
	}
	m, ok := generic.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("medianet: driver options: %w: got %T, want an object", ErrBadOption, generic)
	}
	for k, v := range m {
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("medianet: -o %s: %w: got %T, want a string", k, ErrBadOption, v)
		}
		out[k] = s
	}
	return out, nil
}

// poolOptions are a pool's --ipam-opt values, validated.
type poolOptions struct {
	BlockSize  int                       `json:"blockSize,omitempty"`
	NodeRanges map[string][]netip.Prefix `json:"nodeRanges,omitempty"`
	// ConflictCheck (nil: ipam.DefaultConflictCheck; 0: off) and
	// ConflictRetry (0: ipam.DefaultConflictRetry): conflict.go.
	ConflictCheck *time.Duration `json:"conflictCheck,omitempty"`
	ConflictRetry time.Duration  `json:"conflictRetry,omitempty"`
	// DHCP: --ipam-opt mode=dhcp (dhcp.go).
	DHCP bool `json:"dhcp,omitempty"`
}

// parsePoolOptions reads --ipam-opt block-size=N and
// node-ranges=NODE=CIDR[,NODE=CIDR...] (a node may be named several times).
func parsePoolOptions(opts map[string]string) (poolOptions, error) {
	var o poolOptions
	for k, v := range opts {
		switch k {
		case optBlockSize:
			n, err := strconv.Atoi(strings.TrimPrefix(v, "/"))
			if err != nil || n < 1 || n > 128 {
				return o, fmt.Errorf("medianet: --ipam-opt %s=%q: %w: use a prefix length such as 28", optBlockSize, v, ErrBadOption)
			}
			o.BlockSize = n
		case optNodeRanges:
			r, err := parseNodeRanges(v)
			if err != nil {
				return o, err
			}
			o.NodeRanges = r
		case optIPAMMode:
			if v != modeDHCP {
				return o, fmt.Errorf("medianet: --ipam-opt %s=%q: %w: the only mode is %s (leases from the LAN's DHCP server); drop the option for addresses from --subnet", optIPAMMode, v, ErrBadOption, modeDHCP)
			}
			o.DHCP = true
		case optConflictCheck, optConflictRetry:
			if err := o.parseConflict(k, v); err != nil {
				return o, err
			}
		default:
			if !strings.HasPrefix(k, "com.docker.") {
				return o, fmt.Errorf("medianet: unknown --ipam-opt %s: %w: use %s, %s, %s, %s or %s=%s", k, ErrBadOption,
					optBlockSize, optNodeRanges, optConflictCheck, optConflictRetry, optIPAMMode, modeDHCP)
			}
		}
	}
	if o.DHCP {
		for _, k := range []string{optBlockSize, optNodeRanges, optConflictCheck, optConflictRetry} {
			if _, ok := opts[k]; ok {
				return o, fmt.Errorf("medianet: --ipam-opt %s with %s=%s: %w: the LAN's DHCP server hands out the addresses; drop --ipam-opt %s", k, optIPAMMode, modeDHCP, ErrBadOption, k)
			}
		}
	}
	return o, nil
}

func parseNodeRanges(v string) (map[string][]netip.Prefix, error) {
	out := map[string][]netip.Prefix{}
	for item := range strings.SplitSeq(v, ",") {
		item = strings.TrimSpace(item)
		node, cidr, ok := strings.Cut(item, "=")
		if !ok || node == "" || cidr == "" {
			return nil, fmt.Errorf("medianet: --ipam-opt %s: entry %q: %w: use NODE=CIDR[,NODE=CIDR...]", optNodeRanges, item, ErrBadOption)
		}
		p, err := ipam.ParseRange(cidr)
		if err != nil {
			return nil, fmt.Errorf("medianet: --ipam-opt %s: node %q: %w: %w", optNodeRanges, node, ErrBadOption, err)
		}
		out[node] = append(out[node], p)
	}
	return out, nil
}
