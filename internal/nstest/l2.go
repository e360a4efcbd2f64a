package nstest

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// MAC returns the hardware address of link ifname in n.
func (n *NS) MAC(t testing.TB, ifname string) net.HardwareAddr {
	t.Helper()
	l, err := n.Handle(t).LinkByName(ifname)
	if err != nil {
		t.Fatalf("nstest: %s: link %q: %v", n, ifname, err)
	}
	return l.Attrs().HardwareAddr
}

// Promiscuity returns the promiscuity counter of link ifname in n: a
// macvlan on a link that cannot filter unicast MACs (a veth) raises it
// while the macvlan is up, so its return to the old value tells that the
// macvlan is gone, even from another namespace.
func (n *NS) Promiscuity(ifname string) (int, error) {
	h, err := n.NewHandle()
	if err != nil {
		return 0, err
	}
	defer h.Close()
	l, err := h.LinkByName(ifname)
	if err != nil {
		return 0, fmt.Errorf("nstest: %s: link %q: %w", n, ifname, err)
	}
	return l.Attrs().Promisc, nil
}

// DropUnknownMACs makes the LAN's bridge forward only frames whose source
// MAC is in known and drop the rest, as a VMware vSwitch without forged
// transmits or a port-security switch does (nftables, bridge family). The
// rule goes when the switch namespace does.
func (l *LAN) DropUnknownMACs(t testing.TB, known ...net.HardwareAddr) {
	t.Helper()
	macs := make([]string, len(known))
	for i, m := range known {
		macs[i] = m.String()
	}
	ruleset := fmt.Sprintf(`table bridge nstest {
	set known { type ether_addr; elements = { %s } }
	chain forward { type filter hook forward priority 0; policy accept; ether saddr != @known counter drop; }
}
`, strings.Join(macs, ", "))
	file := filepath.Join(t.TempDir(), "drop-unknown.nft")
	if err := os.WriteFile(file, []byte(ruleset), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Switch.Exec("nft", "-f", file); err != nil {
		t.Fatalf("nstest: %v", err)
	}
}
