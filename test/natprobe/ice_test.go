package natprobe_test

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/medianet/medianet/internal/coturntest"
	"github.com/medianet/medianet/internal/icetest"
	"github.com/medianet/medianet/internal/natlab"
	"github.com/medianet/medianet/natprobe"
)

// Timing of the ground-truth sessions: the second agent gets its peer's
// description checkDelay after the first (the first agent's checks then
// reach the second's NAT well before the second sends any), and an agent
// that has no working pair after checkTimeout has failed.
const (
	checkDelay   = time.Second
	checkTimeout = 8 * time.Second
)

// iceCell is one ordered pair of kinds: the real outcome and the
// prediction in each check order.
type iceCell struct {
	offerer, answerer natlab.Kind
	real              [2]*bool // by icetest.Order; nil: the session did not run
	pairs             [2]string
	pred              natprobe.Prediction
}

// TestICEGroundTruth builds two hosts behind each NAT kind, runs a real
// ICE session (two pion/ice agents, coturn as the STUN server) for every
// ordered pair of kinds in both check orders, probes every host with
// natprobe against the same coturn, and checks that every decided
// natprobe ice prediction matches what the agents did. The matrix goes to
// $NATPROBE_ICE_MATRIX (docs/natprobe.md shows it) or the test's log.
func TestICEGroundTruth(t *testing.T) {
	coturntest.Require(t)
	w := natlab.NewWorld(t)
	stun := coturntest.Start(t, w.Server.Name, coturntest.Options{IPs: []netip.Addr{natlab.ServerIP1, natlab.ServerIP2}, STUNOnly: true})
	stunAddr := stun.Addr().String()
	// Offerers and answerers are distinct hosts, so that a kind meets its
	// own kind too.
	offerers, answerers := map[natlab.Kind]*natlab.Site{}, map[natlab.Kind]*natlab.Site{}
	for _, k := range natlab.Kinds {
		offerers[k], answerers[k] = w.AddSite(t, k), w.AddSite(t, k)
	}
	dir := t.TempDir()
	reports := map[*natlab.Site]string{}
	for _, s := range w.Sites() {
		reports[s] = probeSite(t, s, stunAddr, dir)
	}
	cells := map[[2]natlab.Kind]*iceCell{}
	for _, o := range natlab.Kinds {
		for _, a := range natlab.Kinds {
			c := &iceCell{offerer: o, answerer: a}
			c.pred = predict(t, reports[offerers[o]], reports[answerers[a]])
			cells[[2]natlab.Kind{o, a}] = c
		}
	}
	runSessions(t, cells, offerers, answerers, "stun:"+stunAddr)
	checkCells(t, cells)
	writeMatrix(t, cells, reports, offerers)
}

// probeSite runs natprobe probe --json in the site's host and returns the
// report file.
func probeSite(t *testing.T, s *natlab.Site, server, dir string) string {
	t.Helper()
	rep, _ := runProbe(t, "probe", "--netns", natlab.NetnsPath(s.Host.Name), "--server", server, "--timeout", "2s", "--json")
	file := filepath.Join(dir, fmt.Sprintf("%s-%d.json", s.Kind, s.Index))
	b, _ := json.MarshalIndent(rep, "", "  ")
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

// predict runs natprobe ice --json on two report files.
func predict(t *testing.T, a, b string) natprobe.Prediction {
	t.Helper()
	var p natprobe.Prediction
	runNatprobe(t, &p, "ice", a, b, "--json")
	return p
}

// runSessions runs every cell's two sessions, seven at a time on disjoint
// hosts: round r pairs offerer kind i with answerer kind i+r.
func runSessions(t *testing.T, cells map[[2]natlab.Kind]*iceCell, offerers, answerers map[natlab.Kind]*natlab.Site, stunURI string) {
	n := len(natlab.Kinds)
	for _, order := range []icetest.Order{icetest.AnswererFirst, icetest.OffererFirst} {
		for r := range n {
			var wg sync.WaitGroup
			for i, o := range natlab.Kinds {
				a := natlab.Kinds[(i+r)%n]
				c := cells[[2]natlab.Kind{o, a}]
				wg.Add(1)
				go func() {
					defer wg.Done()
					c.run(t, offerers[o], answerers[a], stunURI, order)
				}()
			}
			wg.Wait()
		}
	}
}

func (c *iceCell) run(t *testing.T, off, ans *natlab.Site, stunURI string, order icetest.Order) {
	for _, s := range []*natlab.Site{off, ans} {
		if err := s.Reset(); err != nil {
			t.Errorf("%v: %v", s.Kind, err)
			return
		}
	}
	out, err := icetest.Session(off.Host.Name, ans.Host.Name, stunURI, order, checkDelay, checkTimeout)
	if err != nil {
		t.Errorf("session %v offers to %v, %v: %v", c.offerer, c.answerer, order, err)
		return
	}
	d := out.Direct()
	c.real[order] = &d
	c.pairs[order] = fmt.Sprintf("offerer %s -> %s; answerer %s -> %s", orNone(out.Offerer.Local), orNone(out.Offerer.Remote),
		orNone(out.Answerer.Local), orNone(out.Answerer.Remote))
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// predicted is the prediction for an order: the answerer is b, so
// answerer-first is "b sends first".
func (c *iceCell) predicted(order icetest.Order) bool {
	if order == icetest.AnswererFirst {
		return c.pred.DirectIfBSendsFirst
	}
	return c.pred.DirectIfASendsFirst
}

func checkCells(t *testing.T, cells map[[2]natlab.Kind]*iceCell) {
	t.Helper()
	for _, c := range cells {
		for _, order := range []icetest.Order{icetest.AnswererFirst, icetest.OffererFirst} {
			if c.real[order] == nil || !c.pred.Decided {
				continue
			}
			if got, want := c.predicted(order), *c.real[order]; got != want {
				t.Errorf("%v offers to %v, %v: natprobe ice predicts direct=%v, the agents got direct=%v (%s; prediction %+v)",
					c.offerer, c.answerer, order, got, want, c.pairs[order], c.pred)
			}
		}
	}
}

func mark(b *bool) string {
	switch {
	case b == nil:
		return "?"
	case *b:
		return "✓"
	}
	return "✗"
}

// writeMatrix writes the matrix as Markdown.
func writeMatrix(t *testing.T, cells map[[2]natlab.Kind]*iceCell, reports map[*natlab.Site]string, offerers map[natlab.Kind]*natlab.Site) {
	var b strings.Builder
	fmt.Fprintf(&b, "Each cell: real outcome answerer-first/offerer-first, then natprobe ice's prediction for the same two orders, then its offerer advice (a = the row's host offers, b = the column's). ✓ direct pair, ✗ none, ? not run or undecided.\n\n")
	fmt.Fprintf(&b, "| offerer \\ answerer |")
	for _, k := range natlab.Kinds {
		fmt.Fprintf(&b, " %s |", k)
	}
	fmt.Fprintf(&b, "\n|---|")
	for range natlab.Kinds {
		fmt.Fprintf(&b, "---|")
	}
	mismatches, decided := 0, 0
	for _, o := range natlab.Kinds {
		fmt.Fprintf(&b, "\n| %s |", o)
		for _, a := range natlab.Kinds {
			c := cells[[2]natlab.Kind{o, a}]
			pred := [2]*bool{}
			if c.pred.Decided {
				decided++
				for _, order := range []icetest.Order{icetest.AnswererFirst, icetest.OffererFirst} {
					v := c.predicted(order)
					pred[order] = &v
					if c.real[order] != nil && *c.real[order] != v {
						mismatches++
					}
				}
			}
			fmt.Fprintf(&b, " %s%s / %s%s %s |", mark(c.real[0]), mark(c.real[1]), mark(pred[0]), mark(pred[1]), c.pred.Offerer)
		}
	}
	fmt.Fprintf(&b, "\n\n%d of %d ordered pairs decided; %d predictions differ from the real outcome.\n\n", decided, len(cells), mismatches)
	fmt.Fprintf(&b, "| kind | mapping | filtering | remaps | natprobe verdict |\n|---|---|---|---|---|\n")
	for _, k := range natlab.Kinds {
		f, _ := os.Open(reports[offerers[k]])
		rep, err := natprobe.ReadReport(f)
		f.Close()
		if err != nil {
			continue
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", k, rep.Mapping, rep.Filtering, bstr(rep.UnsolicitedInboundRemaps), rep.Verdict)
	}
	out := b.String()
	t.Logf("ICE ground truth:\n%s", out)
	if path := os.Getenv("NATPROBE_ICE_MATRIX"); path != "" {
		if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
			t.Errorf("write matrix: %v", err)
		}
	}
}
