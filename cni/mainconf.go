package cni

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net"
	"net/netip"

	"github.com/medianet/medianet/macvlan"
)

// IPAMType is the ipam type the main plugin runs in-process.
const IPAMType = "medianet-ipam"

// MainConfig is a parsed and checked configuration of the main plugin
// (cmd/medianet): the macvlan link, its layer-3 extras, and the IPAM block.
type MainConfig struct {
	// Net is the configuration as given.
	Net NetConf
	// Raw is the configuration's JSON, passed on to a delegated IPAM plugin.
	Raw []byte
	// IPAM is the parsed medianet-ipam configuration; nil when ipam.type
	// names another plugin, or ipam.etcd is in use, and IPAM is then run
	// by exec.
	IPAM *Config
	// Spec is the link to create. Spec.Master is the configured master (or
	// empty for the default-route interface) before VLAN resolution.
	Spec macvlan.Spec
	// Routes are the configured further routes.
	Routes []macvlan.Route
	// Shim describes the host shim when hostShim is set (Master filled in
	// at run time).
	Shim *macvlan.ShimSpec
	// Conflict is the medianet-ipam conflict check (also when IPAM runs
	// by exec); zero for another IPAM type.
	Conflict Conflict
}

// InProcess reports whether IPAM runs inside the main plugin.
func (c *MainConfig) InProcess() bool { return c.IPAM != nil }

// ParseMainConfig parses a medianet network configuration as the main
// plugin sees it: the link keys (master, mode, mtu, vlan, mac, routes,
// skipDAD, hostShim...) and, when ipam.type is medianet-ipam, the whole
// ipam object (ParseConfig). Errors wrap ipam.ErrConfig and name the field.
// Nothing here touches the kernel: a missing master is found at run time.
func ParseMainConfig(data []byte) (*MainConfig, error) {
	var n NetConf
	if err := json.Unmarshal(data, &n); err != nil {
		return nil, jsonError(err)
	}
	c := &MainConfig{Net: n, Raw: data}
	if n.Name == "" {
		return nil, configErr("name is missing: give the network a name")
	}
	if n.IPAM.Type == "" {
		return nil, configErr("ipam.type is missing: use %q or another IPAM plugin such as host-local", IPAMType)
	}
	if err := c.parseLink(); err != nil {
		return nil, err
	}
	if err := c.parseExtras(); err != nil {
		return nil, err
	}
	if n.IPAM.Type == IPAMType {
		ic, err := ParseConfig(data)
		if err != nil {
			return nil, err
		}
		c.Conflict = ic.Conflict
		// Block claims in etcd run in medianet-ipam by exec: the etcd
		// client would triple this plugin's size and start-up time for
		// every network, etcd or not.
		if !ic.UsesEtcd() && !ic.UsesKubernetes() {
			c.IPAM = ic
		}
	}
	return c, nil
}

// parseLink checks master, mode, mtu, vlan and mac.
func (c *MainConfig) parseLink() error {
	n := &c.Net
	mode, err := macvlan.ParseMode(n.Mode)
	if err != nil {
		return configErr("mode %q is unknown: use bridge, private, vepa or passthru", n.Mode)
	}
	if n.MTU < 0 || (n.MTU > 0 && n.MTU < 68) || n.MTU > 65535 {
		return configErr("mtu %d is out of range: use 68..65535 (at most the master's) or leave it out for the master's", n.MTU)
	}
	if n.VLAN < 0 || n.VLAN > 4094 {
		return configErr("vlan %d is out of range: use 1..4094, or leave it out for no VLAN", n.VLAN)
	}
	if len(n.Master) > 15 || (n.VLAN != 0 && len(macvlan.VLANName(n.Master, n.VLAN)) > 15) {
		return configErr("master %q is too long for an interface name (15 bytes, with \".<vlan>\")", n.Master)
	}
	c.Spec = macvlan.Spec{Master: n.Master, Mode: mode, MTU: n.MTU}
	field, mac := "mac", n.MAC
	if n.RuntimeConfig.MAC != "" {
		field, mac = "runtimeConfig.mac", n.RuntimeConfig.MAC
	}
	if mac != "" {
		hw, err := net.ParseMAC(mac)
		if err != nil || len(hw) != 6 || hw[0]&1 == 1 {
			return configErr("%s %q is not a unicast 6-byte MAC such as \"02:00:00:00:00:01\"", field, mac)
		}
		c.Spec.MAC = hw
	}
	return nil
}

// parseExtras checks routes (and medianet-ipam's ipam.routes), the host
// shim keys and logFile.
func (c *MainConfig) parseExtras() error {
	n := &c.Net
	routes, err := parseRoutes("routes", n.Routes)
	if err != nil {
		return err
	}
	c.Routes = routes
	if n.IPAM.Type == IPAMType {
		if err := CheckIPAMRoutes(n); err != nil {
			return err
		}
	}
	if !n.HostShim {
		if n.HostShimName != "" || len(n.HostShimAddresses) > 0 {
			return configErr("hostShimName and hostShimAddresses need \"hostShim\": true")
		}
		return nil
	}
	if c.Spec.Mode != macvlan.ModeBridge {
		return configErr("hostShim needs mode bridge (mode is %q): macvlan children reach the shim only in bridge mode", c.Spec.Mode)
	}
	s := &macvlan.ShimSpec{Name: n.HostShimName}
	if len(s.Name) > 15 {
		return configErr("hostShimName %q is longer than 15 bytes", s.Name)
	}
	for i, a := range n.HostShimAddresses {
		p, err := netip.ParsePrefix(a)
		if err != nil {
			return configErr("hostShimAddresses[%d] %q is not an address with a prefix length such as \"192.168.100.253/32\"", i, a)
		}
		s.Addresses = append(s.Addresses, p)
	}
	c.Shim = s
	return nil
}

// ShimName returns the shim's link name for master: hostShimName, else
// "mns" followed by 8 hex digits of a hash of master.
func (c *MainConfig) ShimName(master string) string {
	if c.Net.HostShimName != "" {
		return c.Net.HostShimName
	}
	h := fnv.New32a()
	h.Write([]byte(master))
	return fmt.Sprintf("mns%08x", h.Sum32())
}
