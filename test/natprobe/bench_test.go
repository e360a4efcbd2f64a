package natprobe_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/medianet/medianet/internal/natlab"
	"github.com/medianet/medianet/natprobe"
)

// BenchmarkProbeVsNatdiscovery measures, on one MASQUERADE NAT, the wall
// time (process start included) of a full natprobe probe and of coturn's
// turnutils_natdiscovery -m -f against the same natprobe server: on the
// bare path, with 25% loss each way, and with 100 ms of round trip added
// (a TUN delay; the kernel has no netem). With $NATPROBE_BASELINE set to
// another natprobe binary (an earlier build), it times that one too, in
// the same run. A run that gives a wrong or no answer counts as wrong.
// Run with e.g. -bench ProbeVsNatdiscovery -benchtime 5x.
func BenchmarkProbeVsNatdiscovery(b *testing.B) {
	cases := []struct {
		name string
		loss float64
		rtt  time.Duration
	}{{"lan", 0, 0}, {"loss=25%", 0.25, 0}, {"rtt=100ms", 0, 100 * time.Millisecond}}
	baseline := os.Getenv("NATPROBE_BASELINE")
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			l := natlab.New(b, natlab.Masquerade, c.loss)
			if c.rtt > 0 {
				l.World.AddDelay(b, c.rtt/2)
			}
			srv := serveNatprobe(b, l)
			var np, nd, base time.Duration
			var npWrong, ndWrong, baseWrong int
			b.ResetTimer()
			for range b.N {
				d, ok := timeProbe(b, natprobeBin(), l, srv)
				np += d
				npWrong += wrong(ok)
				start := time.Now()
				m, f := natdiscovery(b, l)
				nd += time.Since(start)
				ndWrong += wrong(m == "endpoint independent" && f == "address and port dependent")
				if baseline != "" {
					d, ok := timeProbe(b, baseline, l, srv)
					base += d
					baseWrong += wrong(ok)
				}
			}
			n := float64(b.N)
			b.ReportMetric(float64(np.Milliseconds())/n, "natprobe-ms/op")
			b.ReportMetric(float64(nd.Milliseconds())/n, "natdiscovery-ms/op")
			b.ReportMetric(float64(np)/float64(nd), "time-ratio")
			b.ReportMetric(float64(npWrong)/n, "natprobe-wrong/op")
			b.ReportMetric(float64(ndWrong)/n, "natdiscovery-wrong/op")
			if baseline != "" {
				b.ReportMetric(float64(base.Milliseconds())/n, "baseline-ms/op")
				b.ReportMetric(float64(np)/float64(base), "vs-baseline")
				b.ReportMetric(float64(baseWrong)/n, "baseline-wrong/op")
			}
		})
	}
}

func wrong(ok bool) int {
	if ok {
		return 0
	}
	return 1
}

// timeProbe runs bin probe from the lab's client and says whether it got
// the MASQUERADE answer right.
func timeProbe(b *testing.B, bin string, l *natlab.Lab, srv string) (time.Duration, bool) {
	start := time.Now()
	out, _ := exec.Command(bin, "probe", "--netns", natlab.NetnsPath(l.Client), "--server", srv, "--json").Output()
	d := time.Since(start)
	var rep natprobe.Report
	if err := json.Unmarshal(out, &rep); err != nil {
		b.Logf("%s: no report: %v", bin, err)
		return d, false
	}
	return d, rep.Verdict == natprobe.VerdictNeedsTURN && rep.Mapping == natprobe.EndpointIndependent &&
		rep.Filtering == natprobe.AddressAndPortDependent && rep.UnsolicitedInboundRemaps != nil && *rep.UnsolicitedInboundRemaps
}
