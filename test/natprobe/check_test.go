package natprobe_test

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"

	"github.com/medianet/medianet/internal/coturntest"
	"github.com/medianet/medianet/internal/natlab"
	"github.com/medianet/medianet/natprobe"
)

func runCheck(t *testing.T, l *natlab.Lab, args ...string) (string, int) {
	t.Helper()
	code, out := runNatprobeText(t, append([]string{"check", "--netns", natlab.NetnsPath(l.Client)}, args...)...)
	return out, code
}

// TestCheck runs natprobe check against one coturn that is both the RFC
// 5780 STUN server (two addresses) and the TURN server, behind several
// NATs, with TURN working and refusing.
func TestCheck(t *testing.T) {
	coturntest.Require(t)
	tests := []struct {
		name     string
		kind     natlab.Kind
		password string
		verdict  string
		exit     int
		clients  map[string]string // client NAT -> outcome
	}{
		{"masquerade, turn works", natlab.Masquerade, "pw", natprobe.VerdictNeedsTURN, 3, map[string]string{
			"open or full cone": natprobe.OutcomeDirect, "port-restricted cone": natprobe.OutcomeServerFirst,
			"port-restricted cone that remaps": natprobe.OutcomeTURN, "symmetric": natprobe.OutcomeTURN}},
		{"masquerade, turn refuses", natlab.Masquerade, "wrong", "turn-refused", 6, nil},
		{"no nat, turn works", natlab.NoNAT, "pw", natprobe.VerdictOK, 0, map[string]string{
			"port-restricted cone": natprobe.OutcomeDirect, "symmetric": natprobe.OutcomeDirect}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := natlab.New(t, tt.kind, 0)
			coturntest.Start(t, l.Server, coturntest.Options{IPs: []netip.Addr{natlab.ServerIP1, natlab.ServerIP2}, Users: map[string]string{"bob": "pw"}})
			args := []string{"--server", "198.18.0.10:3478", "--turn", "turn:198.18.0.10:3478", "--turn", "turn:198.18.0.10:3478?transport=tcp",
				"--user", "bob", "--password", tt.password}
			out, code := runCheck(t, l, append(args, "--json")...)
			var c natprobe.CheckReport
			if err := json.Unmarshal([]byte(out), &c); err != nil {
				t.Fatalf("not a check report: %v\n%s", err, out)
			}
			if c.Verdict != tt.verdict || code != tt.exit || c.ExitCode != code || len(c.TURN) != 2 {
				t.Errorf("got verdict %q exit %d (field %d), %d TURN checks, want %q %d, 2", c.Verdict, code, c.ExitCode, len(c.TURN), tt.verdict, tt.exit)
			}
			for _, cl := range c.Clients {
				if want, ok := tt.clients[cl.Client]; ok && cl.Outcome != want {
					t.Errorf("client %s: got %s, want %s", cl.Client, cl.Outcome, want)
				}
			}
			human, hcode := runCheck(t, l, args...)
			if hcode != code || !strings.Contains(human, "verdict: "+tt.verdict) || !strings.Contains(human, "direct ICE with typical client NATs") {
				t.Errorf("human output (exit %d):\n%s\nwant the same verdict and exit", hcode, human)
			}
			t.Logf("natprobe check:\n%s", human)
		})
	}
}
