package dhcptest

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"
)

func (s *Server) keaArgs() ([]string, error) {
	c := s.Cfg
	sub := map[string]any{
		"id": 1, "subnet": c.Subnet.String(),
		"pools": []any{map[string]any{"pool": c.PoolFirst.String() + " - " + c.PoolLast.String()}},
	}
	var opts []any
	if c.Gateway.IsValid() {
		opts = append(opts, map[string]any{"name": "routers", "data": c.Gateway.String()})
	}
	if len(c.Routes) > 0 {
		var rs []string
		for _, r := range c.Routes {
			rs = append(rs, r[0]+" - "+r[1])
		}
		opts = append(opts, map[string]any{"name": "classless-static-route", "data": strings.Join(rs, ", ")})
	}
	if opts != nil {
		sub["option-data"] = opts
	}
	d4 := map[string]any{
		"interfaces-config": map[string]any{"interfaces": []string{s.Link}, "dhcp-socket-type": "raw"},
		"lease-database":    map[string]any{"type": "memfile", "persist": true, "name": filepath.Join(s.dir, "kea-leases4.csv"), "lfc-interval": 0},
		"valid-lifetime":    int(c.Lease.Seconds()),
		"subnet4":           []any{sub},
		"authoritative":     true,
		"loggers": []any{map[string]any{"name": "kea-dhcp4", "severity": "DEBUG", "debuglevel": 40,
			"output_options": []any{map[string]any{"output": "stdout"}}}},
	}
	if c.T1 > 0 {
		d4["renew-timer"] = int(c.T1.Seconds())
	}
	if c.T2 > 0 {
		d4["rebind-timer"] = int(c.T2.Seconds())
	}
	b, err := json.MarshalIndent(map[string]any{"Dhcp4": d4}, "", " ")
	if err != nil {
		return nil, err
	}
	path := filepath.Join(s.dir, "kea-dhcp4.conf")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return nil, err
	}
	return []string{"-c", path}, nil
}

func (s *Server) dnsmasqArgs() ([]string, error) {
	c := s.Cfg
	mask := net.IP(net.CIDRMask(c.Subnet.Bits(), 32)).String()
	args := []string{"--no-daemon", "--conf-file=/dev/null", "--port=0", "--bind-interfaces", "--interface=" + s.Link,
		"--except-interface=lo", "--dhcp-authoritative", "--no-ping", "--log-dhcp", "--log-facility=-",
		"--dhcp-leasefile=" + filepath.Join(s.dir, "dnsmasq.leases"), "--pid-file=" + filepath.Join(s.dir, "dnsmasq.pid"),
		"--user=root", "--group=root",
		fmt.Sprintf("--dhcp-range=%s,%s,%s,%s", c.PoolFirst, c.PoolLast, mask, secs(c.Lease))}
	if c.Gateway.IsValid() {
		args = append(args, "--dhcp-option=3,"+c.Gateway.String())
	} else {
		args = append(args, "--dhcp-option=3")
	}
	if c.T1 > 0 {
		args = append(args, "--dhcp-option=option:T1,"+secs(c.T1))
	}
	if c.T2 > 0 {
		args = append(args, "--dhcp-option=option:T2,"+secs(c.T2))
	}
	if len(c.Routes) > 0 {
		var rs []string
		for _, r := range c.Routes {
			rs = append(rs, r[0]+","+r[1])
		}
		args = append(args, "--dhcp-option=121,"+strings.Join(rs, ","))
	}
	return args, nil
}

// keaLeases reads kea's memfile CSV: address,hwaddr,client_id,
// valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state,...;
// a deleted lease is appended with valid_lifetime 0; state 0 is active.
func (s *Server) keaLeases() ([]Lease, error) {
	lines, err := readLines(filepath.Join(s.dir, "kea-leases4.csv"))
	if err != nil {
		return nil, err
	}
	latest := map[netip.Addr]Lease{}
	var order []netip.Addr
	for i, ln := range lines {
		if i == 0 || ln == "" {
			continue
		}
		f := strings.Split(ln, ",")
		if len(f) < 10 {
			continue
		}
		a, err := netip.ParseAddr(f[0])
		if err != nil {
			continue
		}
		if _, seen := latest[a]; !seen {
			order = append(order, a)
		}
		latest[a] = Lease{Address: a, MAC: f[1], ClientID: f[2], Hostname: f[8], Active: f[3] != "0" && f[9] == "0", Expires: unixTime(f[4])}
	}
	var out []Lease
	for _, a := range order {
		out = append(out, latest[a])
	}
	return out, nil
}

// dnsmasqLeases reads dnsmasq's lease file: "expiry mac ip hostname
// clientid" per active lease; a released lease is removed.
func (s *Server) dnsmasqLeases() ([]Lease, error) {
	lines, err := readLines(filepath.Join(s.dir, "dnsmasq.leases"))
	if err != nil {
		return nil, err
	}
	var out []Lease
	for _, ln := range lines {
		f := strings.Fields(ln)
		if len(f) < 5 {
			continue
		}
		a, err := netip.ParseAddr(f[2])
		if err != nil {
			continue
		}
		out = append(out, Lease{Address: a, MAC: f[1], ClientID: f[4], Hostname: f[3], Active: true, Expires: unixTime(f[0])})
	}
	return out, nil
}

// TestConfig is the subnet 10.<base>.0.0/24 of one test's LAN: the
// server at .2, the gateway (option 3) .1, the pool .100 to .160, and the
// shortest leases each kind allows, for renewal tests: kea 8 s (T1 2 s,
// T2 6 s); dnsmasq's shortest is two minutes, with T1 4 s and T2 100 s
// given as options. Tests give each LAN its own base.
func TestConfig(kind string, base byte) Config {
	p := func(last byte) netip.Addr { return netip.AddrFrom4([4]byte{10, base, 0, last}) }
	c := Config{Subnet: netip.PrefixFrom(p(0), 24), Server: p(2), Gateway: p(1),
		PoolFirst: p(100), PoolLast: p(160), Lease: 8 * time.Second, T1: 2 * time.Second, T2: 6 * time.Second}
	if kind == Dnsmasq {
		c.Lease, c.T1, c.T2 = 120*time.Second, 4*time.Second, 100*time.Second
	}
	return c
}
