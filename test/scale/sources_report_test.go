package scale

import (
	"fmt"
	"strings"
	"time"
)

// per1000 is requests per 1,000 ADDs, "-" without ADDs.
func per1000(requests float64, adds int) string {
	if adds == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f", 1000*requests/float64(adds))
}

var srcColumns = []string{"source", "phase", "wall", "ADDs (failed attempts)", "ADD p50 / p99 / max", "claiming ADDs",
	"backend requests", "per 1,000 ADDs", "client requests", "allocations"}

func (ph srcPhase) cells() []string {
	return []string{ph.source, ph.name, ms(ph.wall), fmt.Sprintf("%d (%d)", ph.sum.adds, ph.sum.addErrs), lat(ph.sum.add),
		fmt.Sprint(len(ph.sum.claim)), fmt.Sprintf("%.0f", ph.requests), per1000(ph.requests, ph.sum.adds),
		fmt.Sprint(ph.sum.requests), fmt.Sprint(ph.allocs)}
}

func (ph srcPhase) line() string {
	return fmt.Sprintf("N=%d %s %s: %s; %s", ph.n, ph.source, ph.name, strings.Join(ph.cells()[2:], "; "), strings.Join(append(ph.facts, ph.sum.errFacts()...), "; "))
}

// srcReport renders the comparison as markdown: per node count, one table
// of every source's phases, then the sums side by side.
func srcReport(p srcParams, phases []srcPhase, wb []wbResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n## Block sources side by side (%s)\n\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(&b, "Same machine, same run, same operations per source: %d pods per node at once (cold start), then churn of %d ADDs "+
		"(and the DELs between) by %d workers, every node between %d and %d pods, /%d blocks; then one sync per node. "+
		"etcd: three members on loopback, requests are the KV requests all members served; kubernetes: a real kube-apiserver "+
		"(one etcd behind it), requests are apiserver_request_total for ipam.medianet.io and nodes. "+
		"Request timeout: %s. Client requests: what the nodes' clients counted. Each simulated ADD opens its store and a fresh client, as a CNI process does "+
		"(in one process, client-go reuses TLS connections that separate processes would open anew).\n",
		p.coldPods, p.adds, p.workers, srcMinPods, srcMaxPods, srcBlockBits, timeoutName(p.timeout))
	for i := 0; i < len(phases); {
		n := phases[i].n
		fmt.Fprintf(&b, "\n### %d nodes\n\n| %s |\n|%s\n", n, strings.Join(srcColumns, " | "), strings.Repeat("---|", len(srcColumns)))
		var facts []string
		sums := map[string]*srcPhase{}
		var order []string
		for ; i < len(phases) && phases[i].n == n; i++ {
			ph := phases[i]
			fmt.Fprintf(&b, "| %s |\n", strings.Join(ph.cells(), " | "))
			for _, f := range append(ph.facts, ph.sum.errFacts()...) {
				facts = append(facts, fmt.Sprintf("- %s, %s: %s", ph.source, ph.name, f))
			}
			s := sums[ph.source]
			if s == nil {
				s = &srcPhase{source: ph.source}
				sums[ph.source] = s
				order = append(order, ph.source)
			}
			s.requests += ph.requests
			s.sum.adds += ph.sum.adds
			s.wall += ph.wall
		}
		for _, src := range order {
			s := sums[src]
			facts = append(facts, fmt.Sprintf("- %s, all phases: %d ADDs, %.0f backend requests, %s per 1,000 ADDs, %s of wall time",
				src, s.sum.adds, s.requests, per1000(s.requests, s.sum.adds), ms(s.wall)))
		}
		for _, w := range wb {
			if w.n == n {
				facts = append(facts, w.facts(phases)...)
			}
		}
		fmt.Fprintf(&b, "\n%s\n", strings.Join(facts, "\n"))
	}
	return b.String()
}

func timeoutName(d time.Duration) string {
	if d == 0 {
		return "2s (the default)"
	}
	return d.String()
}
