package cni

import (
	"fmt"
	"net/netip"
	"os"
	"strings"
)

// Env is where the plugin reads the node's identity; the zero value uses the
// process environment and hostname.
type Env struct {
	Getenv   func(string) string
	Hostname func() (string, error)
}

func (e Env) getenv(k string) string {
	if e.Getenv != nil {
		return e.Getenv(k)
	}
	return os.Getenv(k)
}

// ParseArgs parses CNI_ARGS ("K1=V1;K2=V2"). Malformed pairs are errors.
func ParseArgs(s string) (map[string]string, error) {
	out := map[string]string{}
	if s == "" {
		return out, nil
	}
	for _, pair := range strings.Split(s, ";") {
		k, v, ok := strings.Cut(pair, "=")
		if !ok || k == "" {
			return nil, configErr("CNI_ARGS: %q is not KEY=VALUE", pair)
		}
		out[k] = v
	}
	return out, nil
}

// Node returns the node name: ipam.node, env MEDIANET_NODE, CNI arg
// K8S_NODE_NAME, env NODE_NAME, the hostname; first set wins.
func (e Env) Node(c *Config, args map[string]string) (string, error) {
	for _, v := range []string{c.Net.IPAM.Node, e.getenv("MEDIANET_NODE"), args["K8S_NODE_NAME"], e.getenv("NODE_NAME")} {
		if v != "" {
			return v, nil
		}
	}
	hostname := e.Hostname
	if hostname == nil {
		hostname = os.Hostname
	}
	h, err := hostname()
	if err != nil || h == "" {
		return "", configErr("node name unknown: set ipam.node or MEDIANET_NODE (hostname: %v)", err)
	}
	return h, nil
}

// RequestedIPs gathers the addresses asked for by CNI arg IP= (comma
// separated), runtimeConfig "ips" and args.cni.ips. A prefix length, as
// Multus passes it, is accepted and ignored.
func RequestedIPs(c *Config, args map[string]string) ([]netip.Addr, error) {
	type src struct {
		field string
		vals  []string
	}
	srcs := []src{{"runtimeConfig.ips", c.Net.RuntimeConfig.IPs}}
	if c.Net.Args != nil {
		srcs = append(srcs, src{"args.cni.ips", c.Net.Args.CNI.IPs})
	}
	if v := args["IP"]; v != "" {
		srcs = append(srcs, src{"CNI_ARGS IP", strings.Split(v, ",")})
	}
	var out []netip.Addr
	seen := map[netip.Addr]bool{}
	for _, s := range srcs {
		for _, v := range s.vals {
			a, err := parseIP(v)
			if err != nil {
				return nil, configErr("%s: %q is not an address", s.field, v)
			}
			if !seen[a] {
				seen[a] = true
				out = append(out, a)
			}
		}
	}
	return out, nil
}

func parseIP(s string) (netip.Addr, error) {
	s = strings.TrimSpace(s)
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Addr().Unmap(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("bad address %q", s)
	}
	return a.Unmap(), nil
}
