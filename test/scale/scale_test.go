package scale

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// TestScale runs the phases for each node count against a fresh etcd
// cluster and prints the report. It fails on any duplicate or overlap, on
// an ADD that fails for good, and on a reclaim that does not behave; it
// asserts no timing.
func TestScale(t *testing.T) {
	p := loadParams(t)
	var phases []phase
	for _, n := range p.nodes {
		t.Run(fmt.Sprintf("nodes=%d", n), func(t *testing.T) {
			s := newSim(t, p, n)
			phases = append(phases, s.coldStart())
			phases = append(phases, s.fill("fill", s.live()))
			phases = append(phases, s.syncRound("sync after fill"))
			phases = append(phases, s.churn())
			phases = append(phases, s.syncRound("sync after churn"))
			phases = append(phases, s.leaderLoss())
			phases = append(phases, s.nodeDeath())
			for _, ph := range phases[len(phases)-7:] {
				t.Logf("%s", ph.line())
			}
		})
	}
	rep := report(p, phases)
	fmt.Print(rep)
	if p.out != "" {
		if err := os.WriteFile(p.out, []byte(rep), 0o644); err != nil {
			t.Errorf("write %s: %v", p.out, err)
		}
	}
}

// line is one phase in one line, for the test log.
func (ph phase) line() string {
	return fmt.Sprintf("N=%d %s: %s; %s", ph.n, ph.name, strings.Join(ph.cells(), "; "), strings.Join(append(ph.facts, ph.sum.errFacts()...), "; "))
}

var columns = []string{"phase", "wall", "ADDs (failed)", "ADD p50 / p99 / max", "claims", "claim p50 / p99 / max",
	"etcd requests per claim (max)", "KV requests: Txn / Range", "CAS conflicts", "KV requests per 1,000 ADDs",
	"etcd CPU (3 members)", "sim CPU", "etcd db, keys", "allocations on nodes", "load"}

// cells are the phase's columns after the first.
func (ph phase) cells() []string {
	s, e := ph.sum, ph.etcd
	perClaim := "-"
	if len(s.claimReqs) > 0 {
		total := uint64(0)
		for _, r := range s.claimReqs {
			total += r
		}
		perClaim = fmt.Sprintf("%.2f (%d)", float64(total)/float64(len(s.claimReqs)), maxOf(s.claimReqs))
	}
	partial := ""
	if e.partial {
		partial = " (a member was down: partial)"
	}
	per1000 := "-"
	if s.adds > 0 {
		per1000 = fmt.Sprintf("%.1f", 1000*e.kv/float64(s.adds))
	}
	return []string{
		ms(ph.wall),
		fmt.Sprintf("%d (%d)", s.adds, s.addErrs),
		lat(s.add),
		fmt.Sprint(len(s.claim)),
		lat(s.claim),
		perClaim,
		fmt.Sprintf("%.0f / %.0f%s", e.txn, e.rng, partial),
		fmt.Sprintf("%.0f", e.conflicts()),
		per1000,
		fmt.Sprintf("%.1f s", e.cpu.Seconds()),
		fmt.Sprintf("%.1f s", e.self.Seconds()),
		fmt.Sprintf("%.2f MB, %.0f", e.dbBytes/1e6, e.keys),
		fmt.Sprintf("%d on %d", ph.allocs, ph.live),
		ph.load,
	}
}

// report renders every phase as markdown: one table per node count, the
// phases' facts below it.
func report(p params, phases []phase) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n## medianet cluster IPAM at scale (%s)\n\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(&b, "3 etcd members on loopback; %s.\n", p)
	for i := 0; i < len(phases); {
		n := phases[i].n
		fmt.Fprintf(&b, "\n### %d nodes\n\n| %s |\n|%s\n", n, strings.Join(columns, " | "), strings.Repeat("---|", len(columns)))
		var facts []string
		for ; i < len(phases) && phases[i].n == n; i++ {
			ph := phases[i]
			fmt.Fprintf(&b, "| %s | %s |\n", ph.name, strings.Join(ph.cells(), " | "))
			for _, f := range append(ph.facts, ph.sum.errFacts()...) {
				facts = append(facts, fmt.Sprintf("- %s: %s", ph.name, f))
			}
		}
		fmt.Fprintf(&b, "\n%s\n", strings.Join(facts, "\n"))
	}
	return b.String()
}
