package main

import (
	"encoding/json"
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
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		enc.Encode(p)
	} else {
		fmt.Fprintf(stdout, "a (%s): %s\nb (%s): %s\n", files[0], p.A, files[1], p.B)
		for _, r := range p.Reasons {
			fmt.Fprintf(stdout, "reason: %s\n", r)
		}
		switch {
		case !p.Decided:
			fmt.Fprintln(stdout, "verdict: unknown")
		case p.Direct:
			fmt.Fprintf(stdout, "verdict: direct pair forms; offerer: %s\n", p.Offerer)
		default:
			fmt.Fprintln(stdout, "verdict: TURN needed")
		}
	}
	return p.ExitCode()
}
