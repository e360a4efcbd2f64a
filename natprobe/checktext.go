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
// session would do with each typical client NAT, the TURN checks, the
// verdict, and what to change.
func (c *CheckReport) WriteText(w io.Writer) {
	r := c.Probe
	nat := "no NAT"
	if r.NATPresent {
		nat = r.Classic + " NAT"
	}
	fmt.Fprintf(w, "NAT           %s: %s mapping, %s filtering", nat, r.Mapping, r.Filtering)
	if r.UnsolicitedInboundRemaps != nil && *r.UnsolicitedInboundRemaps {
		fmt.Fprint(w, "; remaps its port when a peer's packet arrives first")
	}
	fmt.Fprintf(w, "\n              %s seen as %s (STUN %s, %d ms)\n", r.Local, orDash(r.Mapped), r.Server, r.DurationMs)
	fmt.Fprintln(w, "direct ICE with typical client NATs:")
	for _, cl := range c.Clients {
		if r.Verdict == VerdictBlocked {
			fmt.Fprintf(w, "  %s: no direct pair: UDP from here is blocked\n", cl.Client)
			continue
		}
		out := clientOutcome[cl.Outcome]
		if cl.Client == "UDP blocked" {
			out = "no direct pair: TURN over TCP or TLS"
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
	fmt.Fprintf(w, "verdict: %s (exit %d)\n", c.Verdict, c.ExitCode)
	for _, ch := range c.Changes {
		fmt.Fprintf(w, "change: %s\n", ch)
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
