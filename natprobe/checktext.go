package natprobe

import (
	"fmt"
	"io"
)

// clientOutcome says in words what a typical client gets.
var clientOutcome = map[string]string{
	OutcomeDirect:      "direct",
	OutcomeServerFirst: "direct only if this server sends the first checks (it must answer; see below)",
	OutcomeClientFirst: "direct only if the client sends the first checks (this server must offer; see below)",
	OutcomeTURN:        "no direct pair: TURN",
	OutcomeUndecided:   "unknown (the probe did not decide this server's NAT)",
}

// WriteText prints the report for a person: the NAT, what a direct
// session would do with each typical client NAT, the TURN checks, with
// whom ICE works, the verdict, and what to change.
func (c *CheckReport) WriteText(w io.Writer) {
	r := c.Probe
	writeNAT(w, r)
	f := findTURN(c.TURN)
	fmt.Fprintln(w, "direct ICE with typical client NATs:")
	for _, cl := range c.Clients {
		out := clientOutcome[cl.Outcome]
		switch {
		case r.Verdict == VerdictBlocked:
			out = "no direct pair: UDP from here is blocked"
		case cl.Client == clientUDPBlocked:
			out = "no direct pair: TURN over TCP or TLS"
			if len(f.okStream) > 0 {
				out += fmt.Sprintf(" (%s)", works(f.okStream[:1]))
			}
		case cl.Outcome == OutcomeTURN && len(f.ok) > 0:
			out += fmt.Sprintf(" (%s)", works(f.ok[:1]))
		}
		fmt.Fprintf(w, "  %s (%s): %s\n", cl.Client, cl.Examples, out)
	}
	if len(c.TURN) == 0 {
		fmt.Fprintln(w, "TURN          not checked (give --turn)")
	}
	for _, t := range c.TURN {
		if t.Verdict == TURNOK {
			fmt.Fprintf(w, "TURN          %s: ok, relayed %s (%s), allocation %.1f ms, relay RTT %.1f ms, lifetime %d s\n",
				t.Server, t.Relayed, t.RelayedTransport, t.AllocationMs, t.RelayRTTMs, t.LifetimeSeconds)
			continue
		}
		fmt.Fprintf(w, "TURN          %s: %s at %s\n", t.Server, t.Verdict, t.Stage)
	}
	fmt.Fprintf(w, "ICE           %s\n", c.Summary)
	fmt.Fprintf(w, "verdict: %s (exit %d)\n", c.Verdict, c.ExitCode)
	for _, ch := range c.Changes {
		fmt.Fprintf(w, "change: %s\n", ch)
	}
}

// writeNAT prints what the probe measured about the NAT, and nothing it
// did not: with no STUN reply there is no mapping to speak of.
func writeNAT(w io.Writer, r *Report) {
	if r.Verdict == VerdictBlocked {
		fmt.Fprintf(w, "NAT           not measured: no STUN server answered over UDP (UDP from here is blocked, or the servers are down)\n")
		fmt.Fprintf(w, "              %s, no reply from STUN %s within %d ms\n", r.Local, r.Server, r.DurationMs)
		return
	}
	nat := "no NAT"
	if r.NATPresent {
		nat = r.Classic + " NAT"
	}
	fmt.Fprintf(w, "NAT           %s: %s mapping, %s filtering", nat, r.Mapping, r.Filtering)
	if r.UnsolicitedInboundRemaps != nil && *r.UnsolicitedInboundRemaps {
		fmt.Fprint(w, "; remaps its port when a peer's packet arrives first")
	}
	fmt.Fprintf(w, "\n              %s seen as %s (STUN %s, %d ms)\n", r.Local, r.Mapped, r.Server, r.DurationMs)
}
