package swarm

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/medianet/medianet/internal/dockertest"
)

// BenchmarkServiceScale times `docker service scale` from none to six
// tasks (two a node) until all six run, on a swarm-scoped medianet
// network and on Docker's own macvlan driver with config-only networks (a
// hand-carved --ip-range a node, the setup medianet replaces), on the same
// three hosts in the same run. The two take turns, each going first every
// other iteration, so that a change in the machine's load weighs on both
// alike. It reports both, and their ratio (medianet / macvlan; the target
// is at most 1.1).
func BenchmarkServiceScale(b *testing.B) {
	hs := swarmCluster(b)
	leader := hs.Hosts[0]
	swarmNetwork(b, leader, "mnbench", netip.MustParsePrefix("10.236.1.0/24"), netip.MustParseAddr("10.236.1.254"))
	for i, h := range hs.Hosts {
		h.MustDocker(b, "network", "create", "--config-only", "--subnet", "10.236.2.0/24", "--gateway", "10.236.2.254",
			"--ip-range", fmt.Sprintf("10.236.2.%d/27", 32*i), "-o", "parent="+dockertest.Parent, "mvcfg")
	}
	leader.MustDocker(b, "network", "create", "-d", "macvlan", "--scope", "swarm", "--config-from", "mvcfg", "mvbench")
	svcs := [2]string{"mnsvc", "mvsvc"} // medianet, Docker's macvlan
	for i, net := range []string{"mnbench", "mvbench"} {
		leader.MustDocker(b, "service", "create", "--detach", "--name", svcs[i], "--replicas", "0", "--replicas-max-per-node", "2",
			"--network", net, "--endpoint-mode", "dnsrr", "--no-resolve-image", "--stop-grace-period", "1s",
			dockertest.Image, "sleep", "3600")
	}
	for _, svc := range svcs { // warm both paths outside the timing
		scaleTo(b, leader, svc, 6)
		scaleTo(b, leader, svc, 0)
	}
	var spent [2]time.Duration
	b.ResetTimer()
	for i := range b.N {
		for j := range 2 {
			k := (i + j) % 2
			spent[k] += scaleTo(b, leader, svcs[k], 6)
			b.StopTimer()
			scaleTo(b, leader, svcs[k], 0)
			b.StartTimer()
		}
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(spent[0].Seconds()/n, "medianet-s")
	b.ReportMetric(spent[1].Seconds()/n, "macvlan-s")
	b.ReportMetric(spent[0].Seconds()/spent[1].Seconds(), "ratio")
}

// scaleTo scales svc to n tasks and returns the time until the leader
// counts n running (or, for n = 0, until none is left).
func scaleTo(b *testing.B, leader *dockertest.Host, svc string, n int) time.Duration {
	b.Helper()
	t0 := time.Now()
	leader.MustDocker(b, "service", "scale", "--detach", svc+"="+strconv.Itoa(n))
	want := fmt.Sprintf("%d/%d", n, n)
	deadline := t0.Add(3 * time.Minute)
	for {
		out, err := leader.Docker("service", "ls", "--filter", "name="+svc, "--format", "{{.Replicas}}")
		if err != nil {
			b.Fatal(err)
		}
		// "6/6", or "6/6 (max 2 per node)" with --replicas-max-per-node.
		if got, _, _ := strings.Cut(out, " "); got == want {
			if n > 0 {
				return time.Since(t0)
			}
			ps, err := leader.Docker("service", "ps", "-q", "--filter", "desired-state=running", svc)
			if err == nil && ps == "" {
				return time.Since(t0)
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("service %s: %s running, want %s after 3 minutes", svc, out, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
