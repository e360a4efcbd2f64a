package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/medianet/medianet/natprobe"
)

// turnURIs is a repeatable --turn flag.
type turnURIs []string

func (s *turnURIs) String() string     { return strings.Join(*s, ",") }
func (s *turnURIs) Set(v string) error { *s = append(*s, v); return nil }

// checkCmd runs probe and, with --turn, turn for each server, and prints
// one summary; the exit code is the worst finding's.
func checkCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("natprobe check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var srv servers
	fs.Var(&srv, "server", "STUN server HOST:PORT for the probe (repeat for several)")
	var turns turnURIs
	fs.Var(&turns, "turn", "TURN server `URI` to check (repeat for each transport): turn:HOST:PORT[?transport=udp|tcp] or turns:HOST:PORT")
	var tf turnFlags
	tf.register(fs)
	netnsPath := fs.String("netns", "", "check from inside the network namespace at `PATH`")
	container := fs.String("container", "", "check from inside the network namespace of Docker or podman container `ID`")
	runtime := fs.String("runtime", "", "container runtime for --container: docker or podman (default: try docker, then podman)")
	localPort := fs.Uint("local-port", 0, "local UDP `port` of the probe's basic and mapping tests (the media server's port)")
	timeout := fs.Duration("timeout", 5*time.Second, "bound on the probe, and on each stage of each TURN check")
	asJSON := fs.Bool("json", false, "print one JSON object")
	if err := fs.Parse(args); err != nil {
		return 1
	}
	switch {
	case len(srv) == 0 || fs.NArg() > 0:
		fmt.Fprintln(stderr, "natprobe check: give at least one --server HOST:PORT (a STUN server) and no other arguments")
		return 1
	case *netnsPath != "" && *container != "":
		fmt.Fprintln(stderr, "natprobe check: give --netns or --container, not both")
		return 1
	case *localPort > 65535:
		fmt.Fprintf(stderr, "natprobe check: --local-port %d: want 0 to 65535\n", *localPort)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout*time.Duration(2+5*len(turns)))
	defer cancel()
	if len(turns) > 0 {
		if err := tf.credentials(os.Getenv); err != nil {
			fmt.Fprintf(stderr, "natprobe check: --turn: %v\n", err)
			return 1
		}
	}
	var checks []*natprobe.TURNCheck
	for _, u := range turns {
		c, err := tf.check(ctx, u, *timeout)
		if err != nil {
			fmt.Fprintf(stderr, "natprobe check: --turn: %v\n", err)
			return 1
		}
		checks = append(checks, c)
	}
	p := &natprobe.Prober{LocalPort: uint16(*localPort), Timeout: *timeout}
	closeNet, err := setupProber(ctx, p, srv, *netnsPath, *container, *runtime)
	if err != nil {
		fmt.Fprintf(stderr, "natprobe check: %v\n", err)
		return 1
	}
	defer closeNet()
	rep, err := p.Probe(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "natprobe check: %v\n", err)
		return 1
	}
	treps, err := runTURN(checks, p.Net.(natprobe.TURNNetwork))
	if err != nil {
		fmt.Fprintf(stderr, "natprobe check: %v\n", err)
		return 1
	}
	sum := natprobe.Summarize(rep, treps)
	if *asJSON {
		writeJSON(stdout, sum)
	} else {
		printCheck(stdout, sum)
	}
	return sum.ExitCode
}

// runTURN runs the TURN checks one after the other from n.
func runTURN(checks []*natprobe.TURNCheck, n natprobe.TURNNetwork) ([]*natprobe.TURNReport, error) {
	var out []*natprobe.TURNReport
	for _, c := range checks {
		c.Net = n
		r, err := c.Run()
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// clientOutcome says in words what a typical client gets.
var clientOutcome = map[string]string{
	natprobe.OutcomeDirect:      "direct",
	natprobe.OutcomeServerFirst: "direct only if this server sends the first checks (it must answer; see below)",
	natprobe.OutcomeClientFirst: "direct only if the client sends the first checks (this server must offer; see below)",
	natprobe.OutcomeTURN:        "no direct pair: TURN",
	natprobe.OutcomeUndecided:   "unknown (the probe did not decide this server's NAT)",
}

func printCheck(w io.Writer, c *natprobe.CheckReport) {
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
		if r.Verdict == natprobe.VerdictBlocked {
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
		if t.Verdict == natprobe.TURNOK {
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
