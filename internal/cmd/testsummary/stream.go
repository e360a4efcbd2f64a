package main

import (
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
)

// event is one line of `go test -json` (cmd/test2json's TestEvent, plus
// the build events of `go test -json`).
type event struct {
	Action      string
	Package     string
	Test        string
	Output      string
	ImportPath  string
	FailedBuild string
}

// Skip is one skipped test.
type Skip struct {
	Package string
	Test    string
	Message string // the test's last log entry, with its file:line
	Allowed string `json:",omitempty"` // the allow-list's reason, when one matched
	Entry   string `json:",omitempty"` // that allow-list line, file:line
}

// Run is what one test command did; -record writes it as JSON.
type Run struct {
	Name     string
	Passed   int
	Failed   int
	Skips    []Skip
	Failures []string // "pkg.Test", or "pkg: why" when a package failed outside its tests
	Strict   bool
	ExitCode int
}

type testKey struct{ pkg, test string }

// summarizer turns a stream of events into progress lines on out and a Run.
type summarizer struct {
	out    io.Writer
	allow  *allowList
	module string // trimmed from package paths when printing
	run    Run
	// output holds the output of tests that have not finished, and of
	// packages (test "") that have not.
	output map[testKey]*strings.Builder
	// failedTests counts each package's failed tests.
	failedTests map[string]int
}

func newSummarizer(out io.Writer, allow *allowList, module string) *summarizer {
	return &summarizer{out: out, allow: allow, module: module,
		output: map[testKey]*strings.Builder{}, failedTests: map[string]int{}}
}

// line handles one line of the stream; a line that is not a JSON event
// (a message of the go command) is printed as it is.
func (s *summarizer) line(raw string) {
	var e event
	if !strings.HasPrefix(raw, "{") || json.Unmarshal([]byte(raw), &e) != nil || e.Action == "" {
		fmt.Fprintln(s.out, raw)
		return
	}
	s.event(e)
}

func (s *summarizer) event(e event) {
	k := testKey{e.Package, e.Test}
	switch {
	case e.Action == "build-output":
		fmt.Fprint(s.out, e.Output)
	case e.Action == "output":
		b := s.output[k]
		if b == nil {
			b = &strings.Builder{}
			s.output[k] = b
		}
		b.WriteString(e.Output)
	case e.Test == "":
		if e.Action == "pass" || e.Action == "fail" || e.Action == "skip" {
			s.packageDone(e)
		}
	case e.Action == "pass":
		s.run.Passed++
		delete(s.output, k)
	case e.Action == "skip":
		s.skipped(k)
		delete(s.output, k)
	case e.Action == "fail":
		s.run.Failed++
		s.failedTests[e.Package]++
		s.run.Failures = append(s.run.Failures, s.short(e.Package)+"."+e.Test)
		fmt.Fprint(s.out, s.take(k))
	}
}

// take returns and forgets the buffered output of k.
func (s *summarizer) take(k testKey) string {
	b := s.output[k]
	delete(s.output, k)
	if b == nil {
		return ""
	}
	return b.String()
}

// packageDone prints the package's result line; for a failed package also
// its own output and that of tests that never finished (a timeout's or a
// panic's stack is there).
func (s *summarizer) packageDone(e event) {
	out := s.take(testKey{e.Package, ""})
	if e.Action != "fail" {
		for _, l := range strings.SplitAfter(out, "\n") {
			if l != "" && l != "PASS\n" {
				fmt.Fprint(s.out, l)
			}
		}
		return
	}
	for _, k := range s.unfinished(e.Package) {
		fmt.Fprintf(s.out, "--- %s did not finish:\n%s", k.test, s.take(k))
		s.run.Failed++
		s.failedTests[e.Package]++
		s.run.Failures = append(s.run.Failures, s.short(e.Package)+"."+k.test+" (did not finish)")
	}
	fmt.Fprint(s.out, out)
	if s.failedTests[e.Package] == 0 {
		why := "failed outside its tests"
		if e.FailedBuild != "" {
			why = "build failed"
		}
		s.run.Failures = append(s.run.Failures, s.short(e.Package)+": "+why)
	}
}

// unfinished lists the tests of pkg that have output but no result, in order.
func (s *summarizer) unfinished(pkg string) []testKey {
	var ks []testKey
	for k := range s.output {
		if k.pkg == pkg && k.test != "" {
			ks = append(ks, k)
		}
	}
	sort.Slice(ks, func(i, j int) bool { return ks[i].test < ks[j].test })
	return ks
}

// finish handles the end of the stream: output of packages and tests
// that never ended (the command died) is printed and counted as failure.
func (s *summarizer) finish() {
	pkgs := map[string]bool{}
	for k := range s.output {
		pkgs[k.pkg] = true
	}
	var sorted []string
	for p := range pkgs {
		sorted = append(sorted, p)
	}
	sort.Strings(sorted)
	for _, p := range sorted {
		s.packageDone(event{Action: "fail", Package: p})
	}
}

// logEntry starts a log line of a test: "file.go:12: text".
var logEntry = regexp.MustCompile(`^[^\s:]+\.go:\d+: `)

// skipMessage returns the last log entry of a test's output (the Skip
// call's), continuation lines joined with newlines.
func skipMessage(out string) string {
	var entry []string
	for _, l := range strings.Split(out, "\n") {
		t := strings.TrimSpace(l)
		switch {
		case t == "" || strings.HasPrefix(t, "=== ") || strings.HasPrefix(t, "--- "):
		case logEntry.MatchString(t):
			entry = []string{t}
		case entry != nil:
			entry = append(entry, t)
		}
	}
	if entry == nil {
		return "(no message)"
	}
	return strings.Join(entry, "\n")
}

func (s *summarizer) skipped(k testKey) {
	sk := Skip{Package: s.short(k.pkg), Test: k.test, Message: skipMessage(s.take(k))}
	if e := s.allow.match(k.pkg + "." + k.test + ": " + sk.Message); e != nil {
		sk.Allowed, sk.Entry = e.reason, e.where
	}
	s.run.Skips = append(s.run.Skips, sk)
}

// short trims the module path from a package path.
func (s *summarizer) short(pkg string) string {
	if s.module != "" && strings.HasPrefix(pkg, s.module+"/") {
		return strings.TrimPrefix(pkg, s.module+"/")
	}
	return pkg
}

// unexpected returns the skips no allow-list entry matched.
func (r *Run) unexpected() []Skip {
	var out []Skip
	for _, sk := range r.Skips {
		if sk.Allowed == "" {
			out = append(out, sk)
		}
	}
	return out
}
