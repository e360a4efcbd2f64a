package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/medianet/medianet/natprobe"
)

func iceCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("natprobe ice", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print one JSON object")
	// Accept the flag before or after the two files.
	var files []string
	for len(args) > 0 {
		if err := fs.Parse(args); err != nil {
			return 1
		}
		if fs.NArg() == 0 {
			break
		}
		files = append(files, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(files) != 2 {
		fmt.Fprintln(stderr, "natprobe ice: give two probe reports: natprobe ice A.json B.json")
		return 1
	}
	var reps [2]*natprobe.Report
	for i, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			fmt.Fprintf(stderr, "natprobe ice: %v\n", err)
			return 1
		}
		reps[i], err = natprobe.ReadReport(fh)
		fh.Close()
		if err != nil {
			fmt.Fprintf(stderr, "natprobe ice: %s: %v\n", f, err)
			return 1
		}
	}
	p := natprobe.Predict(reps[0], reps[1])
	if *asJSON {
		writeJSON(stdout, p)
	} else {
		printPrediction(stdout, files, reps, p)
	}
	return p.ExitCode()
}

// printPrediction prints the human form of ice: the sides, the outcome in
// each check order, the verdict, and when the offerer advice holds.
func printPrediction(w io.Writer, files []string, reps [2]*natprobe.Report, p natprobe.Prediction) {
	for i, side := range []string{p.A, p.B} {
		name := []string{"a", "b"}[i]
		extra := ""
		if r := reps[i].UnsolicitedInboundRemaps; r != nil && *r {
			extra = ", remaps its port when a peer's packet arrives first"
		}
		fmt.Fprintf(w, "%s (%s): %s%s\n", name, files[i], side, extra)
	}
	outcome := func(d bool) string {
		if d {
			return "direct"
		}
		return "no direct pair"
	}
	if p.Decided {
		fmt.Fprintf(w, "a's checks first: %s\nb's checks first: %s\n", outcome(p.DirectIfASendsFirst), outcome(p.DirectIfBSendsFirst))
	}
	for _, r := range p.Reasons {
		fmt.Fprintf(w, "reason: %s\n", r)
	}
	switch {
	case !p.Decided:
		fmt.Fprintln(w, "verdict: unknown")
	case p.OrderDependent:
		fmt.Fprintf(w, "verdict: direct pair forms only in one check order; offerer: %s\n", p.Offerer)
		fmt.Fprintf(w, "holds when: %s\n", p.AdviceHolds)
		for _, a := range p.IfNotHeld {
			fmt.Fprintf(w, "if not: %s\n", a)
		}
	case p.Direct:
		fmt.Fprintf(w, "verdict: direct pair forms; offerer: %s\n", p.Offerer)
	default:
		fmt.Fprintln(w, "verdict: TURN needed")
	}
}
