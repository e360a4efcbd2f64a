package natlab

import (
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

func TestNatRules(t *testing.T) {
	tests := []struct {
		kind         Kind
		host, public string
		want         string // a fragment of the joined rules
	}{
		{Masquerade, "10.77.0.2", "198.18.0.5", "-j MASQUERADE"},
		{MasqueradeRandomFully, "10.77.0.2", "198.18.0.5", "MASQUERADE --random-fully"},
		{MasqueradeDropNew, "10.77.0.2", "198.18.0.5", "--ctstate NEW -j DROP"},
		{OneToOne, "10.77.0.2", "198.18.0.5", "--to-source 198.18.0.5"},
		{OneToOne, "fd77::2", "fd18::5", "--to-destination fd77::2"},
		{AddressDependent, "10.77.3.2", "198.18.3.5", "--to-source 198.18.3.5"},
		{UDPBlocked, "10.77.0.2", "198.18.0.5", "-A FORWARD -p udp -j DROP"},
	}
	for _, tt := range tests {
		var all []string
		for _, r := range natRules(tt.kind, tt.host, tt.public) {
			all = append(all, strings.Join(r, " "))
		}
		if got := strings.Join(all, "\n"); !strings.Contains(got, tt.want) {
			t.Errorf("kind %v host %s: got rules\n%s\nwant them to contain %q", tt.kind, tt.host, got, tt.want)
		}
	}
	if r := natRules(NoNAT, "10.77.0.2", "198.18.0.5"); len(r) != 0 {
		t.Errorf("NoNAT: got %d rules, want none", len(r))
	}
}

func TestSiteAddrs(t *testing.T) {
	s := siteAddrs(0)
	if s.HostIP.String() != "10.77.0.2" || s.PublicIP.String() != "198.18.0.1" || s.OneToOneIP.String() != "198.18.0.5" ||
		s.HostIP6.String() != "fd77::2" || s.PublicIP6.String() != "fd18::1" {
		t.Errorf("site 0: got %v %v %v %v %v, want the single-site lab's addresses", s.HostIP, s.PublicIP, s.OneToOneIP, s.HostIP6, s.PublicIP6)
	}
	s = siteAddrs(12)
	if s.HostIP.String() != "10.77.12.2" || s.PublicIP6.String() != "fd18::c:1" {
		t.Errorf("site 12: got %v %v", s.HostIP, s.PublicIP6)
	}
}

func TestLabBuildsAndCleansUp(t *testing.T) {
	var l *Lab
	t.Run("build", func(t *testing.T) {
		l = New(t, Masquerade, 0)
		out, err := In(l.NAT, "iptables", "-t", "nat", "-S", "POSTROUTING")
		if err != nil || !strings.Contains(out, "MASQUERADE") {
			t.Errorf("nat rules: got %q, %v, want MASQUERADE", out, err)
		}
		if err := l.Site.Host.Ping(ServerIP1, 2); err != nil {
			t.Errorf("client cannot reach the server: %v", err)
		}
	})
	if l == nil {
		return
	}
	for _, ns := range []string{l.Client, l.NAT, l.Server} {
		if _, err := os.Stat(NetnsPath(ns)); err == nil {
			t.Errorf("namespace %s left behind after the test", ns)
		}
	}
}

// TestWorldRoutes checks that a NoNAT site is reachable from a NAT'd one
// and from the server, and that a NAT'd site's private address is not.
func TestWorldRoutes(t *testing.T) {
	w := NewWorld(t)
	open := w.AddSite(t, NoNAT)
	natted := w.AddSite(t, Masquerade)
	adf := w.AddSite(t, AddressDependent)
	if err := natted.Host.Ping(open.HostIP, 2); err != nil {
		t.Errorf("masquerade site cannot reach the open site's host: %v", err)
	}
	if err := w.Server.Ping(open.HostIP, 2); err != nil {
		t.Errorf("server cannot reach the open site's host: %v", err)
	}
	if err := open.Host.Ping(natted.HostIP, 1); err == nil {
		t.Errorf("open site reached the masquerade site's private address %v", natted.HostIP)
	}
	out, err := In(adf.Router.Name, "nft", "list", "table", "inet", adfTable)
	if err != nil || !strings.Contains(out, "@out4") {
		t.Errorf("address-dependent filter: got %q, %v", out, err)
	}
	if err := adf.Reset(); err != nil {
		t.Errorf("Reset: %v", err)
	}
}

// TestDelay checks that AddDelay adds its round trip to UDP between a
// host behind a NAT and the server, and that ARP (the first packet) still
// works.
func TestDelay(t *testing.T) {
	l := New(t, Masquerade, 0)
	const oneWay = 50 * time.Millisecond
	l.World.AddDelay(t, oneWay)
	var srv, cli *net.UDPConn
	if err := l.World.Server.Do(func() (err error) {
		srv, err = net.ListenUDP("udp", &net.UDPAddr{IP: ServerIP1.AsSlice(), Port: 7})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if err := l.Site.Host.Do(func() (err error) { cli, err = net.ListenUDP("udp", nil); return err }); err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := srv.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			srv.WriteToUDPAddrPort(buf[:n], from)
		}
	}()
	for i := range 3 {
		start := time.Now()
		cli.WriteToUDP([]byte("ping"), &net.UDPAddr{IP: ServerIP1.AsSlice(), Port: 7})
		cli.SetReadDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 64)
		if _, _, err := cli.ReadFromUDP(buf); err != nil {
			t.Fatalf("round trip %d: %v", i, err)
		}
		if rtt := time.Since(start); rtt < 2*oneWay {
			t.Errorf("round trip %d took %v, want at least %v", i, rtt, 2*oneWay)
		}
	}
}
