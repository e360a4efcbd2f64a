package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"regexp"
	"syscall"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// options are the command line of a run.
type options struct {
	name, allowFile, record string
	strict                  bool
	report                  bool
	args                    []string // the test command, or the records with -report
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("testsummary", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage:\n  testsummary [-strict] [-allow FILE] [-record FILE] [-name NAME] -- go test -json ...\n  testsummary -report FILE...")
		fs.PrintDefaults()
	}
	fs.BoolVar(&o.strict, "strict", os.Getenv("MEDIANET_STRICT_SKIPS") == "1", "fail the run for a skip the allow-list does not name (default: $MEDIANET_STRICT_SKIPS=1)")
	fs.StringVar(&o.allowFile, "allow", "", "allow-list of skips, lines \"REGEXP -- reason\" (e.g. .ci/allowed-skips)")
	fs.StringVar(&o.record, "record", "", "write the run's results as JSON to this file, for -report")
	fs.StringVar(&o.name, "name", "tests", "the run's name in summaries")
	fs.BoolVar(&o.report, "report", false, "print the combined summary of recorded runs (the arguments) and exit")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	o.args = fs.Args()
	if len(o.args) == 0 {
		fs.Usage()
		return nil, errors.New("testsummary: nothing to run: give a go test -json command after --, or records with -report")
	}
	return o, nil
}

// run is main with its exit code: 0 all passed (and, strict, no skip
// outside the allow-list); 1 a failure; 2 a usage or setup error.
func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	if o.report {
		runs, err := readRecords(o.args)
		if err != nil {
			fmt.Fprintf(stderr, "testsummary: %v\n", err)
			return 2
		}
		printReport(stdout, runs)
		return 0
	}
	allow, err := loadAllowList(o.allowFile)
	if err != nil {
		fmt.Fprintf(stderr, "testsummary: %v\n", err)
		return 2
	}
	r, err := runTests(o, allow, stdout, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "testsummary: %v\n", err)
		return 2
	}
	printRun(stdout, r)
	if o.strict {
		for _, e := range allow.unused() {
			fmt.Fprintf(stdout, "  note: allow-list entry %s matched no skip in this run\n", e.where)
		}
	}
	if o.record != "" {
		if err := writeRecord(o.record, r); err != nil {
			fmt.Fprintf(stderr, "testsummary: %v\n", err)
			return 2
		}
	}
	if r.ExitCode != 0 || r.Failed > 0 || len(r.Failures) > 0 || (o.strict && len(r.unexpected()) > 0) {
		return 1
	}
	return 0
}

func loadAllowList(path string) (*allowList, error) {
	if path == "" {
		return &allowList{}, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("allow-list: %w", err)
	}
	defer f.Close()
	return parseAllowList(path, f)
}

// runTests runs the test command, summarizing its stdout; its stderr
// passes through. SIGINT and SIGTERM are forwarded to it.
func runTests(o *options, allow *allowList, stdout, stderr io.Writer) (*Run, error) {
	cmd := exec.Command(o.args[0], o.args[1:]...)
	cmd.Stderr = stderr
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %q: %w", o.args, err)
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		for sig := range sigs {
			_ = cmd.Process.Signal(sig)
		}
	}()
	s := newSummarizer(stdout, allow, modulePath("go.mod"))
	s.run.Name, s.run.Strict = o.name, o.strict
	sc := bufio.NewScanner(pipe)
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	for sc.Scan() {
		s.line(sc.Text())
	}
	scanErr := sc.Err()
	if scanErr != nil {
		_, _ = io.Copy(io.Discard, pipe) // let the command finish
	}
	waitErr := cmd.Wait()
	s.finish()
	if scanErr != nil {
		return nil, fmt.Errorf("read test output: %w", scanErr)
	}
	var exit *exec.ExitError
	switch {
	case errors.As(waitErr, &exit):
		s.run.ExitCode = exit.ExitCode()
	case waitErr != nil:
		return nil, waitErr
	}
	return &s.run, nil
}

var moduleLine = regexp.MustCompile(`(?m)^module\s+(\S+)`)

// modulePath reads the module path from a go.mod file, "" when there is none.
func modulePath(gomod string) string {
	b, err := os.ReadFile(gomod)
	if err != nil {
		return ""
	}
	if m := moduleLine.FindSubmatch(b); m != nil {
		return string(m[1])
	}
	return ""
}
