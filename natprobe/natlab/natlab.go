// Package natlab builds NAT topologies for natprobe's end-to-end tests out
// of network namespaces it creates, veth pairs created directly inside
// those namespaces, and iptables rules; nothing touches the root namespace
// or any pre-existing interface.
//
// Topology (addresses exist only inside the lab's namespaces; IPv6 runs
// alongside with the same rules through ip6tables):
//
//	client ns            nat ns                      server ns
//	c0 10.77.0.2/24 --- n0 10.77.0.1/24
//	   fd77::2/64          fd77::1/64
//	                    n1 198.18.0.1/24 (+ .5) --- s0 198.18.0.10/24, 198.18.0.11/24
//	                       fd18::1/64 (+ ::5)          fd18::10/64, fd18::11/64
//
// The NAT's behaviour is one of the Kind values; Loss drops that fraction
// of packets each way on the server's link with iptables statistic (netem
// is not available on every kernel).
package natlab

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
)

// Kind is the behaviour of the lab's NAT.
type Kind int

const (
	// NoNAT routes without translation.
	NoNAT Kind = iota
	// Masquerade is Linux MASQUERADE, as Docker's bridge uses.
	Masquerade
	// MasqueradeRandomFully is MASQUERADE --random-fully (symmetric).
	MasqueradeRandomFully
	// MasqueradeDropNew is MASQUERADE plus the mitigation that drops
	// unsolicited inbound UDP on the NAT box before conntrack keeps it.
	MasqueradeDropNew
	// OneToOne is a static SNAT/DNAT of the client to PublicOneToOne.
	OneToOne
	// UDPBlocked is MASQUERADE with all forwarded UDP dropped.
	UDPBlocked
)

// Lab addresses.
var (
	ClientIP       = netip.MustParseAddr("10.77.0.2")
	NATInsideIP    = netip.MustParseAddr("10.77.0.1")
	NATPublicIP    = netip.MustParseAddr("198.18.0.1")
	PublicOneToOne = netip.MustParseAddr("198.18.0.5")
	ServerIP1      = netip.MustParseAddr("198.18.0.10")
	ServerIP2      = netip.MustParseAddr("198.18.0.11")

	ClientIP6       = netip.MustParseAddr("fd77::2")
	NATPublicIP6    = netip.MustParseAddr("fd18::1")
	PublicOneToOne6 = netip.MustParseAddr("fd18::5")
	ServerIP61      = netip.MustParseAddr("fd18::10")
	ServerIP62      = netip.MustParseAddr("fd18::11")
)

// Lab is one built topology.
type Lab struct {
	Client, NAT, Server string // namespace names
}

// Run runs a command in the root namespace and returns its combined
// output, wrapping a failure with the command line.
func Run(args ...string) (string, error) {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("natlab: %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// Skip skips t unless the lab can be built: root, ip and iptables.
func Skip(t testing.TB) {
	t.Helper()
	for _, b := range []string{"ip", "iptables"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("natlab: %s not installed", b)
		}
	}
	if out, err := exec.Command("id", "-u").Output(); err != nil || strings.TrimSpace(string(out)) != "0" {
		t.Skip("natlab: needs root to create network namespaces")
	}
}

// New builds a lab with kind and loss (0 to 1), removed when t ends.
func New(t testing.TB, kind Kind, loss float64) *Lab {
	t.Helper()
	Skip(t)
	b := make([]byte, 3)
	rand.Read(b)
	id := hex.EncodeToString(b)
	l := &Lab{Client: "npxc" + id, NAT: "npxn" + id, Server: "npxs" + id}
	t.Cleanup(func() { l.Close() })
	if err := l.build(kind, loss); err != nil {
		t.Fatalf("natlab: build: %v", err)
	}
	return l
}

// Close deletes the namespaces (and with them the veths).
func (l *Lab) Close() {
	for _, ns := range []string{l.Client, l.NAT, l.Server} {
		exec.Command("ip", "netns", "del", ns).Run()
	}
}

// NetnsPath is the path of a lab namespace for natprobe --netns.
func NetnsPath(ns string) string { return "/var/run/netns/" + ns }

// Cmd returns a command that runs inside namespace ns.
func Cmd(ns string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...)
}

// In runs a command inside namespace ns.
func In(ns string, args ...string) (string, error) {
	return Run(append([]string{"ip", "netns", "exec", ns}, args...)...)
}

func (l *Lab) build(kind Kind, loss float64) error {
	steps := [][]string{
		{"ip", "netns", "add", l.Client}, {"ip", "netns", "add", l.NAT}, {"ip", "netns", "add", l.Server},
		{"ip", "-n", l.NAT, "link", "add", "n0", "type", "veth", "peer", "name", "c0", "netns", l.Client},
		{"ip", "-n", l.NAT, "link", "add", "n1", "type", "veth", "peer", "name", "s0", "netns", l.Server},
		{"ip", "-n", l.Client, "addr", "add", "10.77.0.2/24", "dev", "c0"},
		{"ip", "-n", l.NAT, "addr", "add", "10.77.0.1/24", "dev", "n0"},
		{"ip", "-n", l.NAT, "addr", "add", "198.18.0.1/24", "dev", "n1"},
		{"ip", "-n", l.NAT, "addr", "add", "198.18.0.5/24", "dev", "n1"},
		{"ip", "-n", l.Server, "addr", "add", "198.18.0.10/24", "dev", "s0"},
		{"ip", "-n", l.Server, "addr", "add", "198.18.0.11/24", "dev", "s0"},
		{"ip", "-n", l.Client, "addr", "add", "fd77::2/64", "dev", "c0", "nodad"},
		{"ip", "-n", l.NAT, "addr", "add", "fd77::1/64", "dev", "n0", "nodad"},
		{"ip", "-n", l.NAT, "addr", "add", "fd18::1/64", "dev", "n1", "nodad"},
		{"ip", "-n", l.NAT, "addr", "add", "fd18::5/64", "dev", "n1", "nodad"},
		{"ip", "-n", l.Server, "addr", "add", "fd18::10/64", "dev", "s0", "nodad"},
		{"ip", "-n", l.Server, "addr", "add", "fd18::11/64", "dev", "s0", "nodad"},
	}
	for _, ns := range []string{l.Client, l.NAT, l.Server} {
		steps = append(steps, []string{"ip", "-n", ns, "link", "set", "lo", "up"})
	}
	steps = append(steps,
		[]string{"ip", "-n", l.Client, "link", "set", "c0", "up"},
		[]string{"ip", "-n", l.NAT, "link", "set", "n0", "up"},
		[]string{"ip", "-n", l.NAT, "link", "set", "n1", "up"},
		[]string{"ip", "-n", l.Server, "link", "set", "s0", "up"},
		[]string{"ip", "-n", l.Client, "route", "add", "default", "via", "10.77.0.1"},
		[]string{"ip", "-n", l.Server, "route", "add", "10.77.0.0/24", "via", "198.18.0.1"},
		[]string{"ip", "-n", l.Client, "-6", "route", "add", "default", "via", "fd77::1"},
		[]string{"ip", "-n", l.Server, "-6", "route", "add", "fd77::/64", "via", "fd18::1"},
		[]string{"ip", "netns", "exec", l.NAT, "sysctl", "-qw", "net.ipv4.ip_forward=1"},
		[]string{"ip", "netns", "exec", l.NAT, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"},
	)
	for _, s := range steps {
		if _, err := Run(s...); err != nil {
			return err
		}
	}
	for _, fam := range []struct {
		tool string
		v6   bool
	}{{"iptables", false}, {"ip6tables", true}} {
		for _, r := range natRules(kind, fam.v6) {
			if _, err := In(l.NAT, append([]string{fam.tool}, r...)...); err != nil {
				return err
			}
		}
	}
	if loss > 0 {
		return l.addLoss(loss)
	}
	return nil
}

// addLoss drops that fraction of packets each way on the server's link.
func (l *Lab) addLoss(loss float64) error {
	p := fmt.Sprintf("%.4f", loss)
	for _, tool := range []string{"iptables", "ip6tables"} {
		for _, r := range [][]string{
			{"-t", "raw", "-A", "PREROUTING", "-i", "s0", "-m", "statistic", "--mode", "random", "--probability", p, "-j", "DROP"},
			{"-A", "OUTPUT", "-o", "s0", "-m", "statistic", "--mode", "random", "--probability", p, "-j", "DROP"},
		} {
			if _, err := In(l.Server, append([]string{tool}, r...)...); err != nil {
				return err
			}
		}
	}
	return nil
}

// natRules are the iptables (or, with v6, ip6tables) rules of a kind:
// the arguments after the command name.
func natRules(kind Kind, v6 bool) [][]string {
	client, public := "10.77.0.2", "198.18.0.5"
	if v6 {
		client, public = "fd77::2", "fd18::5"
	}
	masq := []string{"-t", "nat", "-A", "POSTROUTING", "-o", "n1", "-j", "MASQUERADE"}
	// A real NAT forwards inbound only for tracked flows.
	fwd := [][]string{
		{"-A", "FORWARD", "-i", "n1", "-o", "n0", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED,DNAT", "-j", "ACCEPT"},
		{"-A", "FORWARD", "-i", "n1", "-o", "n0", "-j", "DROP"},
	}
	switch kind {
	case Masquerade:
		return append([][]string{masq}, fwd...)
	case MasqueradeRandomFully:
		return append([][]string{append(masq, "--random-fully")}, fwd...)
	case MasqueradeDropNew:
		return append([][]string{masq, {"-A", "INPUT", "-i", "n1", "-p", "udp", "-m", "conntrack", "--ctstate", "NEW", "-j", "DROP"}}, fwd...)
	case OneToOne:
		return append([][]string{
			{"-t", "nat", "-A", "POSTROUTING", "-o", "n1", "-s", client, "-j", "SNAT", "--to-source", public},
			{"-t", "nat", "-A", "PREROUTING", "-i", "n1", "-d", public, "-j", "DNAT", "--to-destination", client},
		}, fwd...)
	case UDPBlocked:
		return append([][]string{masq, {"-A", "FORWARD", "-p", "udp", "-j", "DROP"}}, fwd...)
	}
	return nil
}
