package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// strictHint tells what to do about an unexpected skip.
const strictHint = "install what the message names (scripts/deps.sh), or, if CI cannot have it, add a line to .ci/allowed-skips saying why"

// printRun prints one run's totals and every skip with its message.
func printRun(w io.Writer, r *Run) {
	fmt.Fprintf(w, "\n%s: %d passed, %d failed, %d skipped\n", r.Name, r.Passed, r.Failed, len(r.Skips))
	for _, sk := range r.Skips {
		tag := "skip"
		switch {
		case sk.Allowed != "":
			tag = "skip (allowed, " + sk.Entry + ")"
		case r.Strict:
			tag = "UNEXPECTED SKIP"
		}
		fmt.Fprintf(w, "  %s %s.%s: %s\n", tag, sk.Package, sk.Test, indent(sk.Message))
	}
	for _, f := range r.Failures {
		fmt.Fprintf(w, "  FAIL %s\n", f)
	}
	if u := r.unexpected(); len(u) > 0 && r.Strict {
		fmt.Fprintf(w, "strict mode: %d test(s) skipped without an entry in the allow-list: %s\n", len(u), strictHint)
	}
}

func indent(msg string) string { return strings.ReplaceAll(msg, "\n", "\n      ") }

// writeRecord saves r as JSON at path.
func writeRecord(path string, r *Run) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("record %s: %w", path, err)
	}
	return nil
}

// readRecords loads runs saved by writeRecord.
func readRecords(paths []string) ([]*Run, error) {
	var runs []*Run
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("record: %w", err)
		}
		var r Run
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("record %s: %w", p, err)
		}
		runs = append(runs, &r)
	}
	return runs, nil
}

// printReport prints the combined totals of runs and their skips grouped
// by reason (the message without its file:line), most frequent first.
func printReport(w io.Writer, runs []*Run) {
	var passed, failed, skipped, allowed int
	var parts []string
	type group struct {
		reason, allowed, entry string
		tests                  []string
	}
	groups := map[string]*group{}
	for _, r := range runs {
		passed, failed, skipped = passed+r.Passed, failed+r.Failed, skipped+len(r.Skips)
		parts = append(parts, fmt.Sprintf("%s %d/%d/%d", r.Name, r.Passed, r.Failed, len(r.Skips)))
		for _, sk := range r.Skips {
			if sk.Allowed != "" {
				allowed++
			}
			reason := logEntry.ReplaceAllString(sk.Message, "")
			g := groups[reason]
			if g == nil {
				g = &group{reason: reason, allowed: sk.Allowed, entry: sk.Entry}
				groups[reason] = g
			}
			g.tests = append(g.tests, sk.Package+"."+sk.Test)
		}
	}
	fmt.Fprintf(w, "\n== test summary: %d passed, %d failed, %d skipped (%d allowed by .ci/allowed-skips)  [passed/failed/skipped: %s]\n",
		passed, failed, skipped, allowed, strings.Join(parts, ", "))
	sorted := make([]*group, 0, len(groups))
	for _, g := range groups {
		sorted = append(sorted, g)
	}
	sort.Slice(sorted, func(i, j int) bool {
		if len(sorted[i].tests) != len(sorted[j].tests) {
			return len(sorted[i].tests) > len(sorted[j].tests)
		}
		return sorted[i].reason < sorted[j].reason
	})
	for _, g := range sorted {
		fmt.Fprintf(w, "%3d skipped: %s\n", len(g.tests), indent(g.reason))
		if g.allowed != "" {
			fmt.Fprintf(w, "      allowed (%s): %s\n", g.entry, g.allowed)
		} else {
			fmt.Fprintf(w, "      not in the allow-list: strict mode (CI) fails on it\n")
		}
		fmt.Fprintf(w, "      %s\n", strings.Join(g.tests, ", "))
	}
}
