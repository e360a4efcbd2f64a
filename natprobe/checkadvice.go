package natprobe

import (
	"fmt"
	"strings"
)

// The check's advice and summary are built from what was measured: the
// probe's result and the TURN checks. A line never asks for what a check
// just confirmed (TURN deployed, TURN over TCP working), and when TURN
// works the report says so, naming the server checked.

// turnFindings sums up the TURN checks.
type turnFindings struct {
	given    bool
	ok       []string // URIs that relayed data
	okStream []string // of those, over TCP or TLS
	failed   []*TURNReport
}

func findTURN(turns []*TURNReport) turnFindings {
	f := turnFindings{given: len(turns) > 0}
	for _, t := range turns {
		switch {
		case t.Verdict != TURNOK:
			f.failed = append(f.failed, t)
		case t.Transport == TransportUDP:
			f.ok = append(f.ok, t.Server)
		default:
			f.ok = append(f.ok, t.Server)
			f.okStream = append(f.okStream, t.Server)
		}
	}
	return f
}

// works says which checked servers work, for a sentence.
func works(uris []string) string {
	if len(uris) == 1 {
		return uris[0] + " works from here"
	}
	return "each of " + strings.Join(uris, ", ") + " works from here"
}

// changes lists what to change: the probe's advice as the TURN checks
// leave it true, each failed TURN check's error and advice, the order
// conditions of a direct pair, and the checks still missing.
func changes(probe *Report, clients []ClientOutcome, turns []*TURNReport, f turnFindings) []string {
	var out []string
	for _, a := range probe.Advice {
		switch {
		case a == adviceTURN && f.given:
			// TURN is deployed; a failed check says below what to fix.
		case a == adviceUDP && len(f.ok) > 0:
			out = append(out, fmt.Sprintf("UDP to the STUN server does not pass: open UDP egress (and replies) on the firewall so that direct ICE can form; until then every session must relay through TURN (%s)", works(f.ok)))
		default:
			out = append(out, a)
		}
	}
	for _, t := range f.failed {
		out = append(out, fmt.Sprintf("TURN %s: %s", t.Server, t.Error))
		out = append(out, t.Advice...)
	}
	for _, cl := range clients {
		if !cl.Prediction.OrderDependent {
			continue
		}
		out = append(out, fmt.Sprintf("with %s clients a direct pair needs one check order: %s", cl.Client, cl.Prediction.AdviceHolds))
		for _, l := range cl.Prediction.IfNotHeld {
			if l == adviceRelay {
				l = relayAdvice(f)
			}
			out = append(out, l)
		}
		break
	}
	blocked := probe.Verdict == VerdictBlocked
	switch {
	case !f.given && blocked:
		out = append(out, "give --turn with your TURN server over TCP or TLS (turn:HOST:PORT?transport=tcp, turns:HOST:443) to check the fallback from here")
	case !f.given && (probe.Verdict == VerdictNeedsTURN || probe.Verdict == VerdictUnknown):
		out = append(out, "give --turn with your TURN server (for each transport you give clients) to check the fallback from here")
	case f.given && !blocked && len(f.okStream) == 0:
		out = append(out, "clients whose UDP is blocked (strict corporate firewalls) need TURN over TCP or TLS, and no --turn over tcp or tls passed the check: give --turn turn:HOST:PORT?transport=tcp or turns:HOST:443")
	}
	return dedup(out)
}

// relayAdvice is the order conditions' last resort, as the TURN checks
// leave it.
func relayAdvice(f turnFindings) string {
	switch {
	case len(f.ok) > 0:
		return fmt.Sprintf("or relay the session through TURN: %s", works(f.ok))
	case f.given:
		return "or relay the session through TURN, once the TURN check above passes"
	}
	return adviceRelay
}

// summary says with whom ICE works, directly or through TURN.
func summary(probe *Report, clients []ClientOutcome, f turnFindings) string {
	switch probe.Verdict {
	case VerdictBlocked:
		return blockedSummary(f)
	case VerdictUnknown:
		s := "the probe did not decide this server's NAT, so whether direct ICE forms is unknown"
		switch {
		case len(f.ok) > 0:
			return s + fmt.Sprintf("; where it does not, sessions relay through TURN: %s", works(f.ok))
		case f.given:
			return s + "; and no TURN checked relays data from here"
		}
		return s + "; no TURN was checked"
	}
	var direct, ordered, relayed []string
	for _, cl := range clients {
		switch {
		case cl.Client == clientUDPBlocked:
		case cl.Outcome == OutcomeDirect:
			direct = append(direct, cl.Client)
		case cl.Outcome == OutcomeServerFirst || cl.Outcome == OutcomeClientFirst:
			ordered = append(ordered, cl.Client)
		default:
			relayed = append(relayed, cl.Client)
		}
	}
	var parts []string
	if len(direct) > 0 {
		parts = append(parts, "direct with "+strings.Join(direct, ", ")+" clients")
	}
	if len(ordered) > 0 {
		parts = append(parts, "direct in one check order only with "+strings.Join(ordered, ", ")+" clients (see the changes)")
	}
	if len(relayed) > 0 {
		parts = append(parts, "no direct pair with "+strings.Join(relayed, ", ")+" clients: "+relaySummary(f))
	}
	switch {
	case len(f.okStream) > 0:
		parts = append(parts, fmt.Sprintf("clients whose UDP is blocked relay through TURN over TCP or TLS: %s", works(f.okStream)))
	case f.given:
		parts = append(parts, "clients whose UDP is blocked need TURN over TCP or TLS, which no check here passed")
	default:
		parts = append(parts, "clients whose UDP is blocked need TURN over TCP or TLS (not checked)")
	}
	return strings.Join(parts, "; ")
}

// blockedSummary is the summary when no STUN server answered over UDP.
func blockedSummary(f turnFindings) string {
	switch {
	case len(f.okStream) > 0:
		return fmt.Sprintf("UDP from here is blocked: no direct pair with any client; every session must relay through TURN over TCP or TLS, and %s (the media server must take its relay candidates there, e.g. Janus turn_type tcp or tls)", works(f.okStream))
	case len(f.ok) > 0:
		return fmt.Sprintf("UDP to the STUN server is blocked, but TURN over UDP to %s: every session must relay through it", works(f.ok))
	case f.given:
		return "UDP from here is blocked and no TURN checked relays data from here: no ICE session can form"
	}
	return "UDP from here is blocked: no ICE session can form without TURN over TCP or TLS, and none was checked"
}

// relaySummary says what clients with no direct pair get.
func relaySummary(f turnFindings) string {
	switch {
	case len(f.ok) > 0:
		return fmt.Sprintf("they relay through TURN, and %s", works(f.ok))
	case f.given:
		return "they need TURN, and no TURN checked relays data from here"
	}
	return "they need TURN (not checked: give --turn)"
}
