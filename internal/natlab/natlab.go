// Package natlab builds NAT topologies for natprobe's end-to-end tests out
// of network namespaces it creates, veth pairs and a bridge it creates, and
// iptables or nftables rules inside those namespaces; nothing touches the
// root namespace or any pre-existing interface.
//
// A World is a small internet: a bridge in its own namespace, a server
// namespace on it with two addresses (for RFC 5780 servers such as
// natprobe serve and coturn), and sites. A site is a host namespace behind
// a router namespace whose NAT behaviour is one of the Kind values.
// Addresses exist only inside the lab's namespaces (site i uses 10.77.i.0/24
// inside and 198.18.i.1 outside; IPv6 runs alongside with ip6tables):
//
//	site host ns          site router ns                 switch ns      server ns
//	c0 10.77.i.2/24 --- n0 10.77.i.1/24
//	   fd77:0:0:i::2/64    fd77:0:0:i::1/64
//	                    n1 198.18.i.1/16 (+ .5) --- br0 --- s0 198.18.0.10/16, 198.18.0.11/16
//	                       fd18::i:1/64 (+ ::i:5)              fd18::10/64, fd18::11/64
//
// A Lab is a World with one site (site 0), the shape most tests need.
// Loss drops a fraction of packets each way on the server's link with
// iptables statistic, and AddDelay delays them through a TUN device, since
// netem is not available on every kernel.
package natlab

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
)

// Kind is the behaviour of a site's router.
type Kind int

const (
	// NoNAT routes without translation or filtering.
	NoNAT Kind = iota
	// Masquerade is Linux MASQUERADE, as Docker's bridge uses: it keeps
	// the port, filters by address and port, and picks a new port for a
	// peer whose packet arrived first.
	Masquerade
	// MasqueradeRandomFully is MASQUERADE --random-fully (symmetric).
	MasqueradeRandomFully
	// MasqueradeDropNew is MASQUERADE plus the mitigation that drops
	// unsolicited inbound UDP on the NAT box before conntrack keeps it.
	MasqueradeDropNew
	// OneToOne is a static SNAT/DNAT of the host to a public address of
	// its own: endpoint-independent mapping and filtering (full cone).
	OneToOne
	// AddressDependent is OneToOne plus a filter that lets a packet in
	// only from an address the host's socket has sent to (restricted
	// cone), kept per host address and port in an nftables set.
	AddressDependent
	// UDPBlocked is MASQUERADE with all forwarded UDP dropped.
	UDPBlocked
)

// Kinds lists every Kind, in the order of the ground-truth matrix.
var Kinds = []Kind{NoNAT, OneToOne, AddressDependent, MasqueradeDropNew, Masquerade, MasqueradeRandomFully, UDPBlocked}

// String names the kind as the docs do.
func (k Kind) String() string {
	switch k {
	case NoNAT:
		return "none"
	case Masquerade:
		return "masquerade"
	case MasqueradeRandomFully:
		return "random-fully"
	case MasqueradeDropNew:
		return "masq-drop-new"
	case OneToOne:
		return "one-to-one"
	case AddressDependent:
		return "addr-dependent"
	case UDPBlocked:
		return "udp-blocked"
	}
	return fmt.Sprintf("kind(%d)", int(k))
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

// Skip skips t unless a lab can be built: root, ip, iptables, nft and
// nsenter.
func Skip(t testing.TB) {
	t.Helper()
	for _, b := range []string{"ip", "iptables", "ip6tables", "nft", "nsenter", "ss"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("natlab: %s not installed (iproute2, iptables, nftables, util-linux)", b)
		}
	}
	if out, err := exec.Command("id", "-u").Output(); err != nil || strings.TrimSpace(string(out)) != "0" {
		t.Skip("natlab: needs root to create network namespaces")
	}
}

// NetnsPath is the path of a lab namespace for natprobe --netns.
func NetnsPath(ns string) string { return "/run/netns/" + ns }

// Cmd returns a command that runs inside namespace ns.
func Cmd(ns string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...)
}

// In runs a command inside namespace ns.
func In(ns string, args ...string) (string, error) {
	return Run(append([]string{"ip", "netns", "exec", ns}, args...)...)
}
