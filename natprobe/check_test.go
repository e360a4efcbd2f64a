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
	{"address-and-port-dependent mapping, endpoint-independent filtering", decided(true, AddressAndPortDependent, EndpointIndependent, nil)},
	{"address-dependent mapping and filtering", decided(true, AddressDependent, AddressDependent, nil)},
	{"mapping varies by server", func() *Report {
		r := &Report{Server: "198.51.100.1:3478", Local: "10.0.0.2:40000", Mapped: "203.0.113.5:40000", NATPresent: true,
			Mapping: Unknown, Filtering: Unknown, MappingVariesByDestination: boolp(true)}
		decide(r)
		return r
	}},
	{"no NAT, stateful firewall", decided(false, EndpointIndependent, AddressAndPortDependent, boolp(false))},
	{"no NAT, filtering unknown", decided(false, EndpointIndependent, Unknown, nil)},
	{"unknown", decided(true, Unknown, Unknown, nil)},
	{"mapping known, filtering unknown", decided(true, EndpointIndependent, Unknown, boolp(false))},
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

// checked is what the test knows of one combination.
type checked struct {
	probe    *Report
	turns    []*TURNReport
	c        *CheckReport
	lines    []string // of the text report
	ok       []string // TURN URIs that passed
	okStream []string // of those, over TCP or TLS
	failed   []string // TURN URIs that failed
	problems []string
}

func (k *checked) bad(format string, args ...any) {
	k.problems = append(k.problems, fmt.Sprintf(format, args...))
}

// line returns the text report's line starting with prefix.
func (k *checked) line(prefix string) string {
	for _, l := range k.lines {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

// contradictions lists every way the report c, and its text, say
// something the probe and the TURN checks did not measure.
func contradictions(probe *Report, turns []*TURNReport, c *CheckReport, text string) []string {
	k := &checked{probe: probe, turns: turns, c: c, lines: strings.Split(strings.TrimSpace(text), "\n")}
	for _, tr := range turns {
		switch {
		case tr.Verdict != TURNOK:
			k.failed = append(k.failed, tr.Server)
		case tr.Transport != TransportUDP:
			k.okStream = append(k.okStream, tr.Server)
			fallthrough
		default:
			k.ok = append(k.ok, tr.Server)
		}
	}
	k.natLine()
	k.verdict()
	k.advice()
	k.iceLine()
	return k.problems
}

// natLine: the NAT line says what was measured about the NAT, and only
// that.
func (k *checked) natLine() {
	nat, blocked := k.line("NAT "), k.probe.Verdict == VerdictBlocked
	switch {
	case nat == "":
		k.bad("no NAT line")
	case blocked && (strings.Contains(nat, "no NAT") || strings.Contains(nat, "mapping") || !strings.Contains(nat, "UDP")):
		k.bad("UDP blocked, nothing measured, yet the NAT line says %q", nat)
	case !blocked && !k.probe.NATPresent && !strings.Contains(nat, "no NAT"):
		k.bad("no NAT measured, yet the NAT line says %q", nat)
	case k.probe.NATPresent && strings.Contains(nat, "no NAT"):
		k.bad("a NAT measured, yet the NAT line says %q", nat)
	}
	if blocked {
		for _, l := range k.lines {
			if strings.HasPrefix(l, "  ") && strings.Contains(l, ": direct") {
				k.bad("UDP from here is blocked, yet a client line says %q", l)
			}
		}
	}
}

// verdict: the verdict is the worst finding, and the text states it.
func (k *checked) verdict() {
	want, wantVerdict := ExitCode(k.probe.Verdict), k.probe.Verdict
	for _, tr := range k.turns {
		if code := TURNExitCode(tr.Verdict); severity[code] > severity[want] {
			want, wantVerdict = code, "turn-"+tr.Verdict
		}
	}
	if k.c.ExitCode != want || k.c.Verdict != wantVerdict {
		k.bad("verdict %q exit %d, want %q %d (the worst finding)", k.c.Verdict, k.c.ExitCode, wantVerdict, want)
	}
	if !slices.Contains(k.lines, fmt.Sprintf("verdict: %s (exit %d)", k.c.Verdict, k.c.ExitCode)) {
		k.bad("the text does not state verdict %q exit %d", k.c.Verdict, k.c.ExitCode)
	}
}

// advice: no line asks for what a check just confirmed, claims what a
// check refuted, or leaves a failed check unexplained.
func (k *checked) advice() {
	for _, l := range append(append([]string{}, k.c.Changes...), k.lines...) {
		if len(k.turns) > 0 && strings.Contains(l, "deploy TURN") {
			k.bad("a TURN server was given and checked, yet: %q", l)
		}
		if len(k.ok) > 0 && strings.Contains(l, "relay the session through TURN") && !containsAny(l, k.ok) {
			k.bad("TURN works (%v), yet the advice names no checked server: %q", k.ok, l)
		}
		if len(k.okStream) > 0 && strings.Contains(l, "use TURN over TCP/TLS") {
			k.bad("TURN over TCP or TLS was just confirmed (%v), yet: %q", k.okStream, l)
		}
		for _, u := range k.failed {
			if strings.Contains(l, u) && strings.Contains(l, "works") {
				k.bad("TURN %s failed, yet: %q", u, l)
			}
		}
		if len(k.ok) == 0 && strings.Contains(l, "works from here") {
			k.bad("no TURN check passed, yet: %q", l)
		}
	}
	for _, u := range k.failed {
		if !slices.ContainsFunc(k.c.Changes, func(ch string) bool { return strings.HasPrefix(ch, "TURN "+u+":") }) {
			k.bad("TURN %s failed, but no change says why", u)
		}
	}
	seen := map[string]bool{}
	for _, ch := range k.c.Changes {
		if ch == "" || seen[ch] {
			k.bad("empty or repeated change %q", ch)
		}
		seen[ch] = true
		if !slices.Contains(k.lines, "change: "+ch) {
			k.bad("change %q is not in the text", ch)
		}
	}
}

// iceLine: the report says plainly when ICE works through the TURN just
// checked, and asks for --turn when nothing was checked and it may be
// needed.
func (k *checked) iceLine() {
	needsRelay := k.probe.Verdict == VerdictNeedsTURN || k.probe.Verdict == VerdictBlocked || k.probe.Verdict == VerdictUnknown
	ice := k.line("ICE ")
	switch {
	case ice == "":
		k.bad("no ICE line summing up what works")
	case needsRelay && len(k.ok) > 0:
		want := k.ok
		if k.probe.Verdict == VerdictBlocked && len(k.okStream) > 0 {
			want = k.okStream
		}
		if !containsAny(ice, want) || !strings.Contains(ice, "works") {
			k.bad("TURN %v works, but the ICE line does not say so plainly: %q", want, ice)
		}
	case needsRelay && len(k.turns) == 0 && !slices.ContainsFunc(k.c.Changes, func(ch string) bool { return strings.Contains(ch, "--turn") }):
		k.bad("direct ICE may fail and no TURN was checked, but no change asks for --turn")
	}
}

func containsAny(s string, subs []string) bool {
	return slices.ContainsFunc(subs, func(sub string) bool { return strings.Contains(s, sub) })
}
