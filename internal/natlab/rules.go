package natlab

import (
	"fmt"
	"strings"
)

// adfTable is the nftables table of the AddressDependent filter.
const adfTable = "natlab_adf"

// adfRules keeps, per host address and port, the addresses that socket
// sent to, and lets a new inbound flow in only from one of them. Address-
// dependent filtering is per mapping (RFC 4787), so the key includes the
// host's port: a probe's sockets must not open each other's filters.
const adfRules = `table inet ` + adfTable + ` {
	set out4 { type ipv4_addr . inet_service . ipv4_addr; flags dynamic,timeout; timeout 5m; }
	set out6 { type ipv6_addr . inet_service . ipv6_addr; flags dynamic,timeout; timeout 5m; }
	chain forward {
		type filter hook forward priority 0; policy accept;
		iifname "n0" oifname "n1" meta l4proto udp update @out4 { ip saddr . udp sport . ip daddr }
		iifname "n0" oifname "n1" meta l4proto udp update @out6 { ip6 saddr . udp sport . ip6 daddr }
		iifname "n1" oifname "n0" ct state established,related accept
		iifname "n1" oifname "n0" ip daddr . udp dport . ip saddr @out4 accept
		iifname "n1" oifname "n0" ip6 daddr . udp dport . ip6 saddr @out6 accept
		iifname "n1" oifname "n0" drop
	}
}
`

// applyRules installs the site's NAT rules in its router.
func (s *Site) applyRules() error {
	for _, fam := range []struct {
		tool         string
		host, public string
	}{{"iptables", s.HostIP.String(), s.OneToOneIP.String()}, {"ip6tables", s.HostIP6.String(), s.OneToOneIP6.String()}} {
		for _, r := range natRules(s.Kind, fam.host, fam.public) {
			if _, err := In(s.Router.Name, append([]string{fam.tool}, r...)...); err != nil {
				return err
			}
		}
	}
	if s.Kind != AddressDependent {
		return nil
	}
	cmd := Cmd(s.Router.Name, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(adfRules)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("natlab: nft address-dependent filter in %s: %w: %s", s.Router, err, out)
	}
	return nil
}

// natRules are the iptables (or ip6tables) rules of a kind for a host
// address and, for the one-to-one kinds, its public address: the
// arguments after the command name.
func natRules(kind Kind, host, public string) [][]string {
	masq := []string{"-t", "nat", "-A", "POSTROUTING", "-o", "n1", "-j", "MASQUERADE"}
	// A real NAT forwards inbound only for tracked flows.
	fwd := [][]string{
		{"-A", "FORWARD", "-i", "n1", "-o", "n0", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED,DNAT", "-j", "ACCEPT"},
		{"-A", "FORWARD", "-i", "n1", "-o", "n0", "-j", "DROP"},
	}
	oneToOne := [][]string{
		{"-t", "nat", "-A", "POSTROUTING", "-o", "n1", "-s", host, "-j", "SNAT", "--to-source", public},
		{"-t", "nat", "-A", "PREROUTING", "-i", "n1", "-d", public, "-j", "DNAT", "--to-destination", host},
	}
	switch kind {
	case Masquerade:
		return append([][]string{masq}, fwd...)
	case MasqueradeRandomFully:
		return append([][]string{append(masq, "--random-fully")}, fwd...)
	case MasqueradeDropNew:
		return append([][]string{masq, {"-A", "INPUT", "-i", "n1", "-p", "udp", "-m", "conntrack", "--ctstate", "NEW", "-j", "DROP"}}, fwd...)
	case OneToOne, AddressDependent:
		return append(oneToOne, fwd...)
	case UDPBlocked:
		return append([][]string{masq, {"-A", "FORWARD", "-p", "udp", "-j", "DROP"}}, fwd...)
	}
	return nil
}
