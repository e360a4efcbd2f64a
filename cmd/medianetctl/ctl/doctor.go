package ctl

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"syscall"

	"github.com/medianet/medianet/doctor"
)

const doctorUsage = `usage: medianetctl doctor --parent IFACE [--vlan N] [--gateway IP] [--peer IP] [--json]
exit codes: 0 frames pass, 3 frames from new MACs dropped, 4 parent missing, down or without carrier,
            5 a gateway or peer answered nothing, 6 MTU mismatch, 2 usage, 1 error
`

// runDoctor is `medianetctl doctor`: does the parent carry macvlan frames?
func runDoctor(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("doctor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, doctorUsage+"Usage of doctor:\n"); fs.PrintDefaults() }
	var opts doctor.Options
	fs.StringVar(&opts.Parent, "parent", "", "the interface macvlan links go on (required)")
	fs.IntVar(&opts.VLAN, "vlan", 0, "test the 802.1q VLAN N on the parent")
	fs.Func("gateway", "the gateway to ask, IPv4 or IPv6 (repeat for both; default: the default routes' via the parent)", addrList(&opts.Gateways))
	fs.Func("peer", "another node's address to ask (repeatable)", addrList(&opts.Peers))
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := fs.Parse(args); err != nil {
		return ExitUsage
	}
	if fs.NArg() != 0 || opts.Parent == "" {
		fmt.Fprintln(stderr, "medianetctl doctor: --parent is required and takes no arguments")
		fs.Usage()
		return ExitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	r, err := doctor.Run(ctx, opts)
	if err != nil {
		fmt.Fprintf(stderr, "medianetctl doctor: %v\n", err)
		if errors.Is(err, doctor.ErrInvalid) || errors.Is(err, doctor.ErrNoTarget) {
			return ExitUsage
		}
		return ExitError
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			return ExitError
		}
		return r.ExitCode
	}
	printReport(stdout, r)
	return r.ExitCode
}

func addrList(dst *[]netip.Addr) func(string) error {
	return func(s string) error {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return fmt.Errorf("%q is not an IP address", s)
		}
		*dst = append(*dst, a)
		return nil
	}
}

func printReport(w io.Writer, r doctor.Report) {
	fmt.Fprintf(w, "%s: %s (exit %d)\n", r.Link, r.Verdict, r.ExitCode)
	fmt.Fprintf(w, "  %s\n", r.Reason)
	if r.TestMAC != "" {
		fmt.Fprintf(w, "  test MAC %s, MTU %d, %d ms\n", r.TestMAC, r.MTU, r.DurationMs)
	}
	for _, t := range r.Targets {
		fmt.Fprintf(w, "  %s %s: %s", t.Role, t.Address, t.Verdict)
		switch {
		case t.TestMACAnswered:
			fmt.Fprintf(w, " (answered the new MAC from %s in %.1f ms)", t.AnsweredBy, t.RTTMs)
		case t.ParentMACAnswered:
			fmt.Fprintf(w, " (answered only the parent's own MAC, from %s)", t.AnsweredBy)
		default:
			fmt.Fprint(w, " (answered neither the new MAC nor the parent's)")
		}
		if t.FullSizeAnswered != nil && !*t.FullSizeAnswered {
			fmt.Fprintf(w, "; a %d-byte frame got no answer", r.MTU+14)
		}
		fmt.Fprintln(w)
	}
	for _, a := range r.Advice {
		fmt.Fprintf(w, "  - %s\n", a)
	}
}
