package natprobe_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/medianet/medianet/natprobe"
	"github.com/medianet/medianet/natprobe/natlab"
)

// BenchmarkProbeVsNatdiscovery measures, on one MASQUERADE NAT, the wall
// time of a full natprobe probe and of coturn's turnutils_natdiscovery -m
// -f against the same natprobe server, with and without 25% loss each
// way, and how often each gave a wrong or missing answer. Run with e.g.
// -bench ProbeVsNatdiscovery -benchtime 5x.
func BenchmarkProbeVsNatdiscovery(b *testing.B) {
	for _, loss := range []float64{0, 0.25} {
		b.Run(fmt.Sprintf("loss=%g", loss), func(b *testing.B) {
			l := natlab.New(b, natlab.Masquerade, loss)
			srv := serveNatprobe(b, l)
			var np, nd time.Duration
			var npWrong, ndWrong int
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				rep, _ := probe(b, l, "--server", srv)
				np += time.Since(start)
				if rep.Verdict != natprobe.VerdictNeedsTURN || rep.Mapping != natprobe.EndpointIndependent ||
					rep.Filtering != natprobe.AddressAndPortDependent {
					npWrong++
				}
				start = time.Now()
				m, f := natdiscovery(b, l)
				nd += time.Since(start)
				if m != "endpoint independent" || f != "address and port dependent" {
					ndWrong++
				}
			}
			n := float64(b.N)
			b.ReportMetric(float64(np.Milliseconds())/n, "natprobe-ms/op")
			b.ReportMetric(float64(nd.Milliseconds())/n, "natdiscovery-ms/op")
			b.ReportMetric(float64(np)/float64(nd), "time-ratio")
			b.ReportMetric(float64(npWrong)/n, "natprobe-wrong/op")
			b.ReportMetric(float64(ndWrong)/n, "natdiscovery-wrong/op")
		})
	}
}
