package natprobe_test

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/medianet/medianet/internal/coturntest"
	"github.com/medianet/medianet/internal/natlab"
	"github.com/medianet/medianet/natprobe"
)

// runTURN runs natprobe turn --json from the lab's client namespace.
func runTURN(t *testing.T, l *natlab.Lab, args ...string) (*natprobe.TURNReport, int) {
	t.Helper()
	var rep natprobe.TURNReport
	code := runNatprobe(t, &rep, append([]string{"turn", "--netns", natlab.NetnsPath(l.Client), "--json"}, args...)...)
	return &rep, code
}

// TestTURNAgainstCoturn checks natprobe turn from behind a MASQUERADE NAT
// against real coturn: long-term credentials over UDP, TCP and TLS, TURN
// REST API credentials from a shared secret, and each failure an operator
// meets, with the error naming what to fix.
func TestTURNAgainstCoturn(t *testing.T) {
	coturntest.Require(t)
	l := natlab.New(t, natlab.Masquerade, 0)
	const user, pass, secret = "alice", "wonderland", "medianet-shared-secret"
	lt := coturntest.Start(t, l.Server, coturntest.Options{IPs: []netip.Addr{natlab.ServerIP1},
		Users: map[string]string{user: pass}, TLS: true})
	coturntest.Start(t, l.Server, coturntest.Options{IPs: []netip.Addr{natlab.ServerIP2}, Secret: secret, NoTCP: true})
	expiredUser, expiredPass := natprobe.RESTCredentials(secret, "probe", time.Now().Add(-time.Hour))
	creds := []string{"--user", user, "--password", pass}
	dir := t.TempDir()
	passFile, secretFile, wrongFile := filepath.Join(dir, "pass"), filepath.Join(dir, "secret"), filepath.Join(dir, "wrong")
	for p, v := range map[string]string{passFile: pass + "\n", secretFile: secret + "\n", wrongFile: "nope\n"} {
		if err := os.WriteFile(p, []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name    string
		args    []string
		verdict string
		exit    int
		stage   string
		errHas  string            // a fragment the error must contain
		env     map[string]string // set for the run
	}{
		{"udp", append([]string{"--server", "turn:198.18.0.10:3478"}, creds...), natprobe.TURNOK, 0, "", "", nil},
		{"tcp", append([]string{"--server", "turn:198.18.0.10:3478?transport=tcp"}, creds...), natprobe.TURNOK, 0, "", "", nil},
		{"tls with --ca", append([]string{"--server", "turns:198.18.0.10:5349", "--ca", lt.CAFile}, creds...), natprobe.TURNOK, 0, "", "", nil},
		{"rest secret", []string{"--server", "turn:198.18.0.11:3478", "--secret", secret}, natprobe.TURNOK, 0, "", "", nil},
		{"tls without --ca", append([]string{"--server", "turns:198.18.0.10:5349"}, creds...), natprobe.TURNUnreachable, 4, natprobe.StageConnect, "--ca", nil},
		{"wrong password", []string{"--server", "turn:198.18.0.10:3478", "--user", user, "--password", "nope"}, natprobe.TURNRefused, 6, natprobe.StageAllocate, "--password", nil},
		{"wrong secret", []string{"--server", "turn:198.18.0.11:3478", "--secret", "nope"}, natprobe.TURNRefused, 6, natprobe.StageAllocate, "static-auth-secret", nil},
		{"expired rest credentials", []string{"--server", "turn:198.18.0.11:3478", "--user", expiredUser, "--password", expiredPass}, natprobe.TURNRefused, 6, natprobe.StageAllocate, "expired", nil},
		{"unreachable server", append([]string{"--server", "turn:198.18.0.12:3478", "--timeout", "1s"}, creds...), natprobe.TURNUnreachable, 4, natprobe.StageConnect, "no answer", nil},
		{"tcp refused", []string{"--server", "turn:198.18.0.11:3478?transport=tcp", "--secret", secret}, natprobe.TURNUnreachable, 4, natprobe.StageConnect, "refused", nil},
		{"udp port closed", append([]string{"--server", "turn:198.18.0.10:3999"}, creds...), natprobe.TURNUnreachable, 4, natprobe.StageConnect, "ICMP port unreachable", nil},
		{"password file", []string{"--server", "turn:198.18.0.10:3478", "--user", user, "--password-file", passFile}, natprobe.TURNOK, 0, "", "", nil},
		{"secret file", []string{"--server", "turn:198.18.0.11:3478", "--secret-file", secretFile}, natprobe.TURNOK, 0, "", "", nil},
		{"password env", []string{"--server", "turn:198.18.0.10:3478?transport=tcp", "--user", user}, natprobe.TURNOK, 0, "", "", map[string]string{"NATPROBE_TURN_PASSWORD": pass}},
		{"secret env", []string{"--server", "turn:198.18.0.11:3478"}, natprobe.TURNOK, 0, "", "", map[string]string{"NATPROBE_TURN_SECRET": secret}},
		{"wrong password file", []string{"--server", "turn:198.18.0.10:3478", "--user", user, "--password-file", wrongFile}, natprobe.TURNRefused, 6, natprobe.StageAllocate, "--password-file " + wrongFile, nil},
		{"wrong secret env", []string{"--server", "turn:198.18.0.11:3478"}, natprobe.TURNRefused, 6, natprobe.StageAllocate, "env NATPROBE_TURN_SECRET", map[string]string{"NATPROBE_TURN_SECRET": "nope"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			rep, code := runTURN(t, l, tt.args...)
			if rep.Verdict != tt.verdict || code != tt.exit || rep.Stage != tt.stage {
				t.Fatalf("got verdict %q exit %d stage %q (error %q), want %q %d %q", rep.Verdict, code, rep.Stage, rep.Error, tt.verdict, tt.exit, tt.stage)
			}
			if !strings.Contains(rep.Error, tt.errHas) {
				t.Errorf("error %q: want it to name %q", rep.Error, tt.errHas)
			}
			if tt.verdict != natprobe.TURNOK {
				return
			}
			checkRelayed(t, rep)
		})
	}
}

// checkRelayed checks the figures of a working relay.
func checkRelayed(t *testing.T, rep *natprobe.TURNReport) {
	t.Helper()
	relayed, err := netip.ParseAddrPort(rep.Relayed)
	if err != nil || (relayed.Addr() != natlab.ServerIP1 && relayed.Addr() != natlab.ServerIP2) {
		t.Errorf("relayed: got %q, want an address of the server", rep.Relayed)
	}
	if mapped, err := netip.ParseAddrPort(rep.Mapped); err != nil || mapped.Addr() != netip.MustParseAddr("198.18.0.1") {
		t.Errorf("mapped: got %q, want the NAT's public address 198.18.0.1", rep.Mapped)
	}
	if rep.Peer != "udp" {
		t.Errorf("peer: got %q, want udp (a socket here)", rep.Peer)
	}
	if rep.LifetimeSeconds <= 0 || rep.RelayRTTMs <= 0 || rep.AllocationMs <= 0 || rep.RelayedTransport != "udp" {
		t.Errorf("got lifetime %d s, relay RTT %v ms, allocation %v ms, relayed transport %q; want all set",
			rep.LifetimeSeconds, rep.RelayRTTMs, rep.AllocationMs, rep.RelayedTransport)
	}
}

// TestTURNFromUDPBlocked checks the fallback a host whose UDP is blocked
// relies on: TURN over TCP works (its peer is then a second allocation,
// since UDP from the host cannot reach the relay), TURN over UDP does not.
func TestTURNFromUDPBlocked(t *testing.T) {
	coturntest.Require(t)
	l := natlab.New(t, natlab.UDPBlocked, 0)
	coturntest.Start(t, l.Server, coturntest.Options{IPs: []netip.Addr{natlab.ServerIP1}, Users: map[string]string{"carol": "pw"}})
	creds := []string{"--user", "carol", "--password", "pw", "--timeout", "2s"}
	rep, code := runTURN(t, l, append([]string{"--server", "turn:198.18.0.10:3478?transport=tcp"}, creds...)...)
	if rep.Verdict != natprobe.TURNOK || code != 0 || rep.Peer != "relay" {
		t.Errorf("tcp: got verdict %q exit %d peer %q (error %q), want ok 0 relay", rep.Verdict, code, rep.Peer, rep.Error)
	}
	if rep.RelayRTTMs <= 0 {
		t.Errorf("tcp: relay RTT %v, want measured", rep.RelayRTTMs)
	}
	// The figure for docs/natprobe.md: the UDP peer gets a few round
	// trips, not the whole --timeout, before the relay peer takes over.
	t.Logf("tcp from a host whose UDP is blocked: the check took %d ms (--timeout 2s)", rep.DurationMs)
	rep, code = runTURN(t, l, append([]string{"--server", "turn:198.18.0.10:3478"}, creds...)...)
	if rep.Verdict != natprobe.TURNUnreachable || code != 4 {
		t.Errorf("udp: got verdict %q exit %d (error %q), want unreachable 4", rep.Verdict, code, rep.Error)
	}
}
