package soak

import (
	"bufio"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"time"
)

// figures are what the soak prints at the end.
type figures struct {
	steps        int
	kills        int                       // kills attempted (some land after the program ended)
	ops          map[string]map[string]int // kind -> outcome -> count
	faults       map[string]int
	checks       map[string]int // invariant -> times it held
	findings     map[string]int // check finding kind -> node-steps it was listed
	errors       map[string]int // operation errors, grouped by message
	sticky       map[string]int
	notes        []string
	leaks        []string
	reservations []string
	drain        time.Duration // from the last DEL to empty stores and etcd
	drained      bool
	loadStart    string
}

func newFigures() *figures {
	return &figures{ops: map[string]map[string]int{}, faults: map[string]int{}, checks: map[string]int{},
		findings: map[string]int{}, errors: map[string]int{}, sticky: map[string]int{}, loadStart: loadavg()}
}

func (f *figures) report(s *soak) string {
	var b strings.Builder
	total := 0
	for _, m := range f.ops {
		for _, n := range m {
			total += n
		}
	}
	fmt.Fprintf(&b, "soak: %d steps, %d operations in %v (seed %d, ipam.sticky %q); load average %s at the start, %s at the end\n",
		f.steps, total, time.Since(s.start).Round(time.Second), s.p.seed, s.p.sticky, f.loadStart, loadavg())
	fmt.Fprintf(&b, "operations run:\n")
	for _, k := range slices.Sorted(maps.Keys(f.ops)) {
		fmt.Fprintf(&b, "  %-24s %s\n", k, counts(f.ops[k]))
	}
	section(&b, "faults injected", f.faults)
	fmt.Fprintf(&b, "  (kills attempted: %d; the others found the program finished, and its outcome stood)\n", f.kills)
	section(&b, "invariant checks passed", f.checks)
	section(&b, "check findings seen (node-steps)", f.findings)
	section(&b, "operation errors (grouped)", f.errors)
	if s.p.sticky != "" {
		section(&b, "pods coming back on the sticky network", f.sticky)
	}
	fmt.Fprintf(&b, "leaks after the runtime's DEL and GC: %d\n", len(f.leaks))
	for _, l := range f.leaks {
		fmt.Fprintf(&b, "  %s\n", l)
	}
	fmt.Fprintf(&b, "reservations kept then (sticky holds, foreign and moved reservations): %d\n", len(f.reservations))
	for _, r := range f.reservations {
		fmt.Fprintf(&b, "  %s\n", r)
	}
	if f.drained {
		fmt.Fprintf(&b, "drain: every container deleted; stores and etcd empty %v later\n", f.drain.Round(time.Second))
	}
	for _, n := range f.notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	return b.String()
}

func section(b *strings.Builder, title string, m map[string]int) {
	n := 0
	for _, v := range m {
		n += v
	}
	fmt.Fprintf(b, "%s: %d\n", title, n)
	for _, k := range slices.Sorted(maps.Keys(m)) {
		fmt.Fprintf(b, "  %6d  %s\n", m[k], k)
	}
}

func counts(m map[string]int) string {
	var parts []string
	n := 0
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
		n += m[k]
	}
	return fmt.Sprintf("%5d (%s)", n, strings.Join(parts, ", "))
}

// stepLog is the run's log: every step's operations and outcomes, faults
// and changes, written to a file as the run goes; the last lines are kept
// for the failure message.
type stepLog struct {
	f    *os.File
	w    *bufio.Writer
	tail []string
}

const tailLines = 120

func openLog(path string) (*stepLog, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("soak: step log: %w", err)
	}
	return &stepLog{f: f, w: bufio.NewWriter(f)}, nil
}

func (l *stepLog) line(s string) {
	fmt.Fprintln(l.w, s)
	l.tail = append(l.tail, s)
	if len(l.tail) > 2*tailLines {
		l.tail = slices.Clone(l.tail[len(l.tail)-tailLines:])
	}
}

// fileOnly writes s to the file alone (a state dump, too long for the
// failure message).
func (l *stepLog) fileOnly(s string) { fmt.Fprintln(l.w, s) }

func (l *stepLog) close() {
	_ = l.w.Flush()
	_ = l.f.Close()
}

// logf adds a line to the step log, stamped with the step and the time.
// It is safe from the operations' goroutines.
func (s *soak) logf(format string, args ...any) {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	s.log.line(fmt.Sprintf("%5d %7.2fs  %s", s.step, time.Since(s.start).Seconds(), fmt.Sprintf(format, args...)))
}

// fail ends the run: the violation, the last steps, and where the whole
// log is.
func (s *soak) fail(format string, args ...any) {
	s.t.Helper()
	msg := fmt.Sprintf(format, args...)
	s.logf("FAILED: %s", msg)
	s.logMu.Lock()
	tail := s.log.tail[max(0, len(s.log.tail)-tailLines):]
	_ = s.log.w.Flush()
	s.logMu.Unlock()
	s.t.Fatalf("%s\n--- last steps (full log: %s):\n%s\n%s", msg, s.p.logPath, strings.Join(tail, "\n"), s.fig.report(s))
}

func joinLines(ls []string) string { return strings.Join(ls, "\n  ") }

// describe lists the cluster's state, for a failure's log.
func describe(cs *clusterState) string {
	var b strings.Builder
	for _, n := range cs.nodes {
		for _, net := range netNames {
			fmt.Fprintf(&b, "node %s %s blocks:", n.name, net)
			for _, bl := range n.blocks[net] {
				fmt.Fprintf(&b, " %s(%d free", bl.Prefix, bl.Free())
				if !bl.Usable() {
					fmt.Fprintf(&b, ", lost: %s", bl.Lost)
				}
				b.WriteString(")")
			}
			fmt.Fprintf(&b, "\nnode %s %s allocations:", n.name, net)
			for _, a := range n.allocs[net] {
				fmt.Fprintf(&b, " %s=%v", a.ContainerID, a.IPs)
			}
			b.WriteString("\n")
		}
		for _, f := range n.findings {
			fmt.Fprintf(&b, "node %s finding: %s\n", n.name, f)
		}
	}
	if cs.claimsRead {
		b.WriteString("etcd claims:")
		for _, c := range cs.claims {
			fmt.Fprintf(&b, " %s=%s", c.Block, c.Claim.Node)
		}
		b.WriteString("\n")
	}
	return b.String()
}
