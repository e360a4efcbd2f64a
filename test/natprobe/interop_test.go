package natprobe_test

import (
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/medianet/medianet/internal/natlab"
)

// basicNATs are the four NATs that the interop and IPv6 tests run on,
// with what a probe must report behind each.
var basicNATs = []struct {
	name string
	kind natlab.Kind
	want want
}{
	{"no nat", natlab.NoNAT, wantOpen},
	{"masquerade", natlab.Masquerade, wantMasquerade},
	{"masquerade random-fully", natlab.MasqueradeRandomFully, wantRandomFully},
	{"one-to-one", natlab.OneToOne, wantFullCone},
}

// TestProbeAgainstCoturn runs natprobe probe against coturn's turnserver in
// RFC 5780 mode (two listening IPs; alternate port = port + 1).
func TestProbeAgainstCoturn(t *testing.T) {
	for _, tt := range basicNATs {
		t.Run(tt.name, func(t *testing.T) {
			l := natlab.New(t, tt.kind, 0)
			srv := serveCoturn(t, l)
			rep, code := probe(t, l, "--server", srv)
			if !rep.RFC5780 {
				t.Errorf("rfc5780: got false, want true against coturn with two listening IPs")
			}
			tt.want.check(t, rep, code)
		})
	}
}

var natdiscoveryLine = regexp.MustCompile(`NAT with (.+) (Mapping|Filtering)!`)

// natdiscovery runs coturn's turnutils_natdiscovery -m -f from the lab's
// client namespace and returns its mapping and filtering lines.
func natdiscovery(t testing.TB, l *natlab.Lab) (mapping, filtering string) {
	t.Helper()
	if _, err := exec.LookPath("turnutils_natdiscovery"); err != nil {
		t.Skip("coturn turnutils_natdiscovery not installed")
	}
	out, _ := natlab.Cmd(l.Client, "turnutils_natdiscovery", "-m", "-f", "-p", "3478", "198.18.0.10").CombinedOutput()
	for _, m := range natdiscoveryLine.FindAllStringSubmatch(string(out), -1) {
		if m[2] == "Mapping" {
			mapping = strings.ToLower(m[1])
		} else {
			filtering = strings.ToLower(m[1])
		}
	}
	return mapping, filtering
}

// TestNatdiscoveryAgainstServe runs coturn's client against natprobe serve.
func TestNatdiscoveryAgainstServe(t *testing.T) {
	tests := []struct {
		name               string
		kind               natlab.Kind
		mapping, filtering string
	}{
		{"no nat", natlab.NoNAT, "endpoint independent", "endpoint independent"},
		{"masquerade", natlab.Masquerade, "endpoint independent", "address and port dependent"},
		{"masquerade random-fully", natlab.MasqueradeRandomFully, "address and port dependent", "address and port dependent"},
		{"one-to-one", natlab.OneToOne, "endpoint independent", "endpoint independent"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := natlab.New(t, tt.kind, 0)
			serveNatprobe(t, l)
			m, f := natdiscovery(t, l)
			if m != tt.mapping || f != tt.filtering {
				t.Errorf("got mapping %q filtering %q, want %q %q", m, f, tt.mapping, tt.filtering)
			}
		})
	}
}
