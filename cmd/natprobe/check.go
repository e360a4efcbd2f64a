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
		sum.WriteText(stdout)
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
