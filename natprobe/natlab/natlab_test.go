package natlab

import (
	"os"
	"strings"
	"testing"
)

func TestNatRules(t *testing.T) {
	tests := []struct {
		kind Kind
		v6   bool
		want string // a fragment of the joined rules
	}{
		{Masquerade, false, "-j MASQUERADE"},
		{MasqueradeRandomFully, false, "MASQUERADE --random-fully"},
		{MasqueradeDropNew, false, "--ctstate NEW -j DROP"},
		{OneToOne, false, "--to-source 198.18.0.5"},
		{OneToOne, true, "--to-destination fd77::2"},
		{UDPBlocked, false, "-A FORWARD -p udp -j DROP"},
	}
	for _, tt := range tests {
		var all []string
		for _, r := range natRules(tt.kind, tt.v6) {
			all = append(all, strings.Join(r, " "))
		}
		if got := strings.Join(all, "\n"); !strings.Contains(got, tt.want) {
			t.Errorf("kind %d v6 %v: got rules\n%s\nwant them to contain %q", tt.kind, tt.v6, got, tt.want)
		}
	}
	if r := natRules(NoNAT, false); len(r) != 0 {
		t.Errorf("NoNAT: got %d rules, want none", len(r))
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
		if _, err := In(l.Client, "ip", "route", "get", ServerIP1.String()); err != nil {
			t.Errorf("client has no route to the server: %v", err)
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
