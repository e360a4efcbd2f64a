package natprobe

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// natCase is one result of the probe, as the prober builds it.
type natCase struct {
	name string
	rep  func() *Report
}

func decided(nat bool, mapping, filtering string, remaps *bool) func() *Report {
	return func() *Report {
		r := &Report{Server: "198.51.100.1:3478", Local: "10.0.0.2:40000", Mapped: "203.0.113.5:40000",
			NATPresent: nat, Mapping: mapping, Filtering: filtering, UnsolicitedInboundRemaps: remaps}
		if !nat {
			r.Mapped = r.Local
		}
		decide(r)
		return r
	}
}

var natCases = []natCase{
	{"no NAT", decided(false, EndpointIndependent, EndpointIndependent, boolp(false))},
	{"full cone", decided(true, EndpointIndependent, EndpointIndependent, boolp(false))},
	{"restricted cone", decided(true, EndpointIndependent, AddressDependent, boolp(false))},
	{"port-restricted cone", decided(true, EndpointIndependent, AddressAndPortDependent, boolp(false))},
	{"port-restricted cone that remaps", decided(true, EndpointIndependent, AddressAndPortDependent, boolp(true))},
	{"address-dependent mapping", decided(true, AddressDependent, EndpointIndependent, nil)},
	{"symmetric", decided(true, AddressAndPortDependent, AddressAndPortDependent, nil)},
	{"unknown", decided(true, Unknown, Unknown, nil)},
	{"UDP blocked", func() *Report {
		r := &Report{Server: "198.51.100.1:3478", Local: "10.0.0.2:40000"}
		blocked(r)
		return r
	}},
}

// turnResult is one TURN check's outcome, as TURNCheck.Run reports it.
func turnResult(uri, transport, verdict string) *TURNReport {
	r := &TURNReport{Server: uri, Transport: transport, Verdict: verdict, Advice: []string{}}
	switch verdict {
	case TURNOK:
		r.Relayed, r.RelayedTransport, r.Peer = "198.51.100.1:50000", TransportUDP, "udp"
		if transport != TransportUDP {
			r.Peer = "relay"
		}
	case TURNRefused:
		r.Stage, r.Error = StageAllocate, "Allocate: error 401 Unauthorized: wrong --user"
	case TURNUnreachable:
		r.Stage, r.Error = StageConnect, "no answer from 198.51.100.1:3478 over "+transport
	case TURNRelayFailed:
		r.Stage, r.Error = StageRelay, "data sent from a peer here to the relay came back 0 times"
	}
	adviseTURN(r)
	return r
}

const (
	uriUDP = "turn:198.51.100.1:3478"
	uriTCP = "turn:198.51.100.2:3478?transport=tcp"
	uriTLS = "turns:198.51.100.3:443"
)

var turnCases = []struct {
	name  string
	turns func() []*TURNReport
}{
	{"none given", func() []*TURNReport { return nil }},
	{"ok over udp", func() []*TURNReport { return []*TURNReport{turnResult(uriUDP, TransportUDP, TURNOK)} }},
	{"ok over tcp", func() []*TURNReport { return []*TURNReport{turnResult(uriTCP, TransportTCP, TURNOK)} }},
	{"ok over tls", func() []*TURNReport { return []*TURNReport{turnResult(uriTLS, TransportTLS, TURNOK)} }},
	{"ok over udp, tcp and tls", func() []*TURNReport {
		return []*TURNReport{turnResult(uriUDP, TransportUDP, TURNOK), turnResult(uriTCP, TransportTCP, TURNOK), turnResult(uriTLS, TransportTLS, TURNOK)}
	}},
	{"refused", func() []*TURNReport { return []*TURNReport{turnResult(uriUDP, TransportUDP, TURNRefused)} }},
	{"unreachable over udp", func() []*TURNReport { return []*TURNReport{turnResult(uriUDP, TransportUDP, TURNUnreachable)} }},
	{"unreachable over tcp", func() []*TURNReport { return []*TURNReport{turnResult(uriTCP, TransportTCP, TURNUnreachable)} }},
	{"relay-failed", func() []*TURNReport { return []*TURNReport{turnResult(uriUDP, TransportUDP, TURNRelayFailed)} }},
	{"udp unreachable, tcp ok", func() []*TURNReport {
		return []*TURNReport{turnResult(uriUDP, TransportUDP, TURNUnreachable), turnResult(uriTCP, TransportTCP, TURNOK)}
	}},
	{"udp ok, tcp refused", func() []*TURNReport {
		return []*TURNReport{turnResult(uriUDP, TransportUDP, TURNOK), turnResult(uriTCP, TransportTCP, TURNRefused)}
	}},
}

// TestCheckSaysWhatIsTrue runs Summarize and the text report over every
// combination of probe result and TURN result, and holds the verdict and
// every line to what was measured.
func TestCheckSaysWhatIsTrue(t *testing.T) {
	for _, nc := range natCases {
		for _, tc := range turnCases {
			t.Run(nc.name+"/"+tc.name, func(t *testing.T) {
				probe, turns := nc.rep(), tc.turns()
				c := Summarize(probe, turns)
				var buf bytes.Buffer
				c.WriteText(&buf)
				for _, problem := range contradictions(probe, turns, c, buf.String()) {
					t.Error(problem)
				}
				if t.Failed() {
					t.Logf("report:\n%s", buf.String())
				}
			})
		}
	}
}

// contradictions lists every way the report c, and its text, say
// something the probe and the TURN checks did not measure.
func contradictions(probe *Report, turns []*TURNReport, c *CheckReport, text string) []string {
	var out []string
	bad := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	lines := strings.Split(strings.TrimSpace(text), "\n")
	var okURIs, tcpOKURIs, failedURIs []string
	for _, tr := range turns {
		switch {
		case tr.Verdict == TURNOK && tr.Transport != TransportUDP:
			tcpOKURIs = append(tcpOKURIs, tr.Server)
			fallthrough
		case tr.Verdict == TURNOK:
			okURIs = append(okURIs, tr.Server)
		default:
			failedURIs = append(failedURIs, tr.Server)
		}
	}
	isBlocked := probe.Verdict == VerdictBlocked

	// The NAT line says what was measured about the NAT, and only that.
	nat := ""
	for _, l := range lines {
		if strings.HasPrefix(l, "NAT ") {
			nat = l
		}
	}
	switch {
	case nat == "":
		bad("no NAT line")
	case isBlocked && (strings.Contains(nat, "no NAT") || strings.Contains(nat, "mapping") || !strings.Contains(nat, "UDP")):
		bad("UDP blocked, nothing measured, yet the NAT line says %q", nat)
	case !isBlocked && !probe.NATPresent && !strings.Contains(nat, "no NAT"):
		bad("no NAT measured, yet the NAT line says %q", nat)
	case probe.NATPresent && strings.Contains(nat, "no NAT"):
		bad("a NAT measured, yet the NAT line says %q", nat)
	}

	// The verdict is the worst finding.
	want, wantVerdict := ExitCode(probe.Verdict), probe.Verdict
	for _, tr := range turns {
		if code := TURNExitCode(tr.Verdict); severity[code] > severity[want] {
			want, wantVerdict = code, "turn-"+tr.Verdict
		}
	}
	if c.ExitCode != want || c.Verdict != wantVerdict {
		bad("verdict %q exit %d, want %q %d (the worst finding)", c.Verdict, c.ExitCode, wantVerdict, want)
	}
	if !slices.Contains(lines, fmt.Sprintf("verdict: %s (exit %d)", c.Verdict, c.ExitCode)) {
		bad("the text does not state verdict %q exit %d", c.Verdict, c.ExitCode)
	}

	// Advice follows from the TURN checks.
	all := append(append([]string{}, c.Changes...), lines...)
	for _, l := range all {
		if len(turns) > 0 && strings.Contains(l, "deploy TURN") {
			bad("a TURN server was given and checked, yet: %q", l)
		}
		if len(okURIs) > 0 && strings.Contains(l, "relay the session through TURN") && !containsAny(l, okURIs) {
			bad("TURN works (%v), yet the advice names no checked server: %q", okURIs, l)
		}
		if len(tcpOKURIs) > 0 && strings.Contains(l, "use TURN over TCP/TLS") {
			bad("TURN over TCP or TLS was just confirmed (%v), yet: %q", tcpOKURIs, l)
		}
		for _, u := range failedURIs {
			if strings.Contains(l, u) && strings.Contains(l, "works") {
				bad("TURN %s failed, yet: %q", u, l)
			}
		}
		if len(okURIs) == 0 && strings.Contains(l, "works from here") {
			bad("no TURN check passed, yet: %q", l)
		}
	}
	for _, u := range failedURIs {
		if !slices.ContainsFunc(c.Changes, func(ch string) bool { return strings.HasPrefix(ch, "TURN "+u+":") }) {
			bad("TURN %s failed, but no change says why", u)
		}
	}
	seen := map[string]bool{}
	for _, ch := range c.Changes {
		if ch == "" || seen[ch] {
			bad("empty or repeated change %q", ch)
		}
		seen[ch] = true
		if !slices.Contains(lines, "change: "+ch) {
			bad("change %q is not in the text", ch)
		}
	}

	// Say plainly when ICE works through the TURN just checked.
	needsRelay := probe.Verdict == VerdictNeedsTURN || isBlocked || probe.Verdict == VerdictUnknown
	ice := ""
	for _, l := range lines {
		if strings.HasPrefix(l, "ICE ") {
			ice = l
		}
	}
	switch {
	case ice == "":
		bad("no ICE line summing up what works")
	case needsRelay && len(okURIs) > 0:
		want := okURIs
		if isBlocked && len(tcpOKURIs) > 0 {
			want = tcpOKURIs
		}
		if !containsAny(ice, want) || !strings.Contains(ice, "works") {
			bad("TURN %v works, but the ICE line does not say so plainly: %q", want, ice)
		}
	case needsRelay && len(turns) == 0 && !slices.ContainsFunc(c.Changes, func(ch string) bool { return strings.Contains(ch, "--turn") }):
		bad("direct ICE may fail and no TURN was checked, but no change asks for --turn")
	}
	if isBlocked {
		for _, l := range lines {
			if strings.HasPrefix(l, "  ") && strings.Contains(l, ": direct") {
				bad("UDP from here is blocked, yet a client line says %q", l)
			}
		}
	}
	return out
}

func containsAny(s string, subs []string) bool {
	return slices.ContainsFunc(subs, func(sub string) bool { return strings.Contains(s, sub) })
}
