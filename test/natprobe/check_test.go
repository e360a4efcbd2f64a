package natprobe_test

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

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
		has, not []string          // lines the text report must have, or must not
	}{
		{"masquerade, turn works", natlab.Masquerade, "pw", natprobe.VerdictNeedsTURN, 3, map[string]string{
			"open or full cone": natprobe.OutcomeDirect, "port-restricted cone": natprobe.OutcomeServerFirst,
			"port-restricted cone that remaps": natprobe.OutcomeTURN, "symmetric": natprobe.OutcomeTURN},
			[]string{"they relay through TURN, and each of turn:198.18.0.10:3478, turn:198.18.0.10:3478?transport=tcp works from here",
				"or relay the session through TURN: each of"},
			[]string{"deploy TURN", "relay the session through TURN\n"}},
		{"masquerade, turn refuses", natlab.Masquerade, "wrong", "turn-refused", 6, nil,
			[]string{"no TURN checked relays data from here", "change: TURN turn:198.18.0.10:3478: "},
			[]string{"deploy TURN", "works from here"}},
		{"no nat, turn works", natlab.NoNAT, "pw", natprobe.VerdictOK, 0, map[string]string{
			"port-restricted cone": natprobe.OutcomeDirect, "symmetric": natprobe.OutcomeDirect},
			[]string{"NAT           no NAT: endpoint-independent mapping, endpoint-independent filtering",
				"clients whose UDP is blocked relay through TURN over TCP or TLS: turn:198.18.0.10:3478?transport=tcp works from here"},
			[]string{"change: "}},
		// The UDP TURN check is unreachable (4) like the probe (4): the
		// probe's verdict stands.
		{"udp blocked, turn over tcp works", natlab.UDPBlocked, "pw", natprobe.VerdictBlocked, 4, nil,
			[]string{"NAT           not measured: no STUN server answered over UDP",
				"every session must relay through TURN over TCP or TLS, and turn:198.18.0.10:3478?transport=tcp works from here"},
			[]string{"no NAT", "use TURN over TCP/TLS", "deploy TURN"}},
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
			start := time.Now()
			human, hcode := runCheck(t, l, args...)
			took := time.Since(start)
			if hcode != code || !strings.Contains(human, "verdict: "+tt.verdict) || !strings.Contains(human, "direct ICE with typical client NATs") {
				t.Errorf("human output (exit %d):\n%s\nwant the same verdict and exit", hcode, human)
			}
			for _, h := range tt.has {
				if !strings.Contains(human, h) {
					t.Errorf("the report lacks %q", h)
				}
			}
			for _, n := range tt.not {
				if strings.Contains(human, n) {
					t.Errorf("the report says %q, which the checks contradict", n)
				}
			}
			t.Logf("natprobe check took %v (probe %d ms, TURN checks %v):\n%s", took.Round(time.Millisecond), c.Probe.DurationMs, turnDurations(c.TURN), human)
		})
	}
}

// turnDurations lists each TURN check's duration, for the log.
func turnDurations(turns []*natprobe.TURNReport) []string {
	var out []string
	for _, t := range turns {
		out = append(out, fmt.Sprintf("%s %s %d ms", t.Server, t.Verdict, t.DurationMs))
	}
	return out
}
