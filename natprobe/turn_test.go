package natprobe

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseTURNURI(t *testing.T) {
	tests := []struct {
		in        string
		host      string
		port      uint16
		transport string
		wantErr   bool
	}{
		{"turn:198.51.100.1:3478", "198.51.100.1", 3478, TransportUDP, false},
		{"turn:198.51.100.1", "198.51.100.1", 3478, TransportUDP, false},
		{"turn:198.51.100.1:3478?transport=udp", "198.51.100.1", 3478, TransportUDP, false},
		{"turn:turn.example.org:3478?transport=tcp", "turn.example.org", 3478, TransportTCP, false},
		{"turns:turn.example.org:443", "turn.example.org", 443, TransportTLS, false},
		{"turns:turn.example.org", "turn.example.org", 5349, TransportTLS, false},
		{"turn:[2001:db8::1]:3478", "2001:db8::1", 3478, TransportUDP, false},
		{"turns:turn.example.org:443?transport=udp", "", 0, "", true},
		{"stun:198.51.100.1:3478", "", 0, "", true},
		{"turn:198.51.100.1:3478?transport=sctp", "", 0, "", true},
		{"turn:198.51.100.1:99999", "", 0, "", true},
		{"198.51.100.1:3478", "", 0, "", true},
		{"", "", 0, "", true},
		{"TURN:h:1", "h", 1, TransportUDP, false},
		{"turn:[:1------]34tratransport=u", "", 0, "", true}, // made pion/stun's ParseURI recurse forever
		{"turn:2001:db8::1", "", 0, "", true},                // IPv6 without brackets
		{"turn:[fe80::1%eth0]:3478", "", 0, "", true},
		{"turn:user@h:3478", "", 0, "", true},
		{"turn:h:3478?transport=tcp&x=1", "", 0, "", true},
		{"turn:-h:3478", "", 0, "", true},
	}
	for _, tt := range tests {
		s, err := ParseTURNURI(tt.in)
		if tt.wantErr {
			if !errors.Is(err, ErrBadTURNURI) {
				t.Errorf("%q: got %+v, %v, want ErrBadTURNURI", tt.in, s, err)
			}
			continue
		}
		if err != nil || s.Host != tt.host || s.Port != tt.port || s.Transport != tt.transport {
			t.Errorf("%q: got %+v, %v, want %s %d %s", tt.in, s, err, tt.host, tt.port, tt.transport)
		}
	}
}

// TestRESTCredentials checks against a vector computed with openssl:
// echo -n 1700000000:probe | openssl dgst -sha1 -hmac s3cret -binary | base64
func TestRESTCredentials(t *testing.T) {
	user, pass := RESTCredentials("s3cret", "probe", time.Unix(1700000000, 0))
	if user != "1700000000:probe" || pass != "78RmFAnb6WbvR6VDso3uGX55Yk4=" {
		t.Errorf("got %q %q", user, pass)
	}
	if user, _ := RESTCredentials("s3cret", "", time.Unix(1700000000, 0)); user != "1700000000" {
		t.Errorf("no user part: got %q", user)
	}
	if exp, ok := restExpiry("1700000000:probe"); !ok || exp.Unix() != 1700000000 {
		t.Errorf("restExpiry: got %v %v", exp, ok)
	}
	for _, u := range []string{"alice", "12:bob", ""} {
		if _, ok := restExpiry(u); ok {
			t.Errorf("restExpiry(%q): got ok, want not a REST username", u)
		}
	}
}

// TestExplainAuth checks that each kind of refused credentials names
// what to fix.
func TestExplainAuth(t *testing.T) {
	now := time.Unix(1800000000, 0)
	expired, _ := RESTCredentials("x", "probe", now.Add(-time.Hour))
	tests := []struct {
		name string
		c    TURNCheck
		want string
	}{
		{"long-term", TURNCheck{User: "alice", Password: "pw"}, "--password"},
		{"long-term from a file", TURNCheck{User: "alice", Password: "pw", PasswordFrom: "--password-file /run/secrets/turn"}, "--password-file /run/secrets/turn"},
		{"secret from the environment", TURNCheck{Secret: "s", SecretFrom: "env NATPROBE_TURN_SECRET"}, "env NATPROBE_TURN_SECRET"},
		{"secret", TURNCheck{Secret: "s"}, "static-auth-secret"},
		{"expired", TURNCheck{User: expired, Password: "pw"}, "expired"},
	}
	for _, tt := range tests {
		tt.c.Now = func() time.Time { return now }
		if err := tt.c.defaults(); err != nil {
			t.Fatal(err)
		}
		if got := tt.c.explainError("Allocate", 401, "Unauthorized"); !strings.Contains(got, tt.want) {
			t.Errorf("%s: got %q, want it to name %q", tt.name, got, tt.want)
		}
	}
	for code, want := range map[int]string{403: "forbids", 442: "no-udp-relay", 486: "quota", 508: "relay ports"} {
		c := TURNCheck{User: "a", Password: "b"}
		if got := c.explainError("Allocate", code, "x"); !strings.Contains(got, want) {
			t.Errorf("error %d: got %q, want %q", code, got, want)
		}
	}
	if err := (&TURNCheck{User: "a"}).defaults(); !errors.Is(err, ErrNoCredentials) {
		t.Errorf("no password: got %v, want ErrNoCredentials", err)
	}
}

func TestTURNExitCode(t *testing.T) {
	for v, want := range map[string]int{TURNOK: 0, TURNUnreachable: 4, TURNRefused: 6, TURNRelayFailed: 7} {
		if got := TURNExitCode(v); got != want {
			t.Errorf("%s: got %d, want %d", v, got, want)
		}
	}
}

func TestSummarize(t *testing.T) {
	masq := rep(true, EndpointIndependent, AddressAndPortDependent, boolp(true))
	open := rep(false, EndpointIndependent, EndpointIndependent, boolp(false))
	blockedRep := &Report{}
	blocked(blockedRep)
	turn := func(v string) *TURNReport { return &TURNReport{Server: "turn:x", Verdict: v, Error: "e"} }
	tests := []struct {
		name    string
		probe   *Report
		turns   []*TURNReport
		verdict string
		exit    int
	}{
		{"open, no turn", open, nil, VerdictOK, 0},
		{"masquerade, turn ok", masq, []*TURNReport{turn(TURNOK)}, VerdictNeedsTURN, 3},
		{"masquerade, turn refused", masq, []*TURNReport{turn(TURNOK), turn(TURNRefused)}, "turn-refused", 6},
		{"open, turn relay failed", open, []*TURNReport{turn(TURNRelayFailed), turn(TURNUnreachable)}, "turn-relay-failed", 7},
		{"blocked, turn ok", blockedRep, []*TURNReport{turn(TURNOK)}, VerdictBlocked, 4},
		{"blocked, turn refused", blockedRep, []*TURNReport{turn(TURNRefused)}, "turn-refused", 6},
	}
	for _, tt := range tests {
		c := Summarize(tt.probe, tt.turns)
		if c.Verdict != tt.verdict || c.ExitCode != tt.exit || len(c.Clients) != len(typicalClients) {
			t.Errorf("%s: got %q exit %d (%d clients), want %q %d", tt.name, c.Verdict, c.ExitCode, len(c.Clients), tt.verdict, tt.exit)
		}
	}
	c := Summarize(masq, nil)
	var outcomes []string
	for _, cl := range c.Clients {
		outcomes = append(outcomes, cl.Outcome)
	}
	want := []string{OutcomeDirect, OutcomeDirect, OutcomeServerFirst, OutcomeTURN, OutcomeTURN, OutcomeTURN}
	if strings.Join(outcomes, ",") != strings.Join(want, ",") {
		t.Errorf("docker-like server: got client outcomes %v, want %v", outcomes, want)
	}
	if !strings.Contains(strings.Join(c.Changes, "\n"), "--turn") {
		t.Errorf("needs-turn without a TURN check: changes %q should ask for --turn", c.Changes)
	}
}
