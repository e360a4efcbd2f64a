package metrics_test

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/medianet/medianet/internal/dockertest"
	"github.com/medianet/medianet/internal/nstest"
	"github.com/medianet/medianet/internal/promtest"
)

// TestDockerMetricsInPrometheus: medianetd serving Docker with
// --metrics-listen times Docker's calls and shows its store, through a
// real dockerd and a real Prometheus.
func TestDockerMetricsInPrometheus(t *testing.T) {
	nstest.SkipUnlessRoot(t)
	dockertest.Require(t)
	promtest.SkipUnlessAvailable(t)
	lan := nstest.NewRootLAN(t, "mnmd")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	dockertest.StartMedianetd(t, bin("medianetd"), "--metrics-listen", addr, "--node", "host-a")
	name := nstest.UniqueName("mnmet")
	if out, err := dockertest.Docker("network", "create", "-d", "medianet", "--ipam-driver", "medianet",
		"--subnet", "10.95.0.0/24", "--gateway", "10.95.0.254", "-o", "parent="+lan.Master, name); err != nil {
		t.Fatalf("docker network create: %v: %s", err, out)
	}
	t.Cleanup(func() { _, _ = dockertest.Docker("network", "rm", name) })
	prom := promtest.Start(t, promtest.Options{Targets: []string{addr}})
	a := dockertest.Run(t, []string{"--network", name})
	dockertest.Run(t, []string{"--network", name})
	for expr, want := range map[string]float64{
		`sum(medianet_operations_total{plugin="docker",operation="NetworkDriver.Join",code="0",node="host-a"})`:               2,
		`sum(medianet_operation_duration_seconds_count{plugin="docker",operation="IpamDriver.RequestAddress",node="host-a"})`: 3, // the gateway's, then one per container
		`sum(medianet_ipam_addresses_in_use{node="host-a"})`:                                                                  2,
		`medianet_ipam_store_scrape_success{node="host-a"}`:                                                                   1,
	} {
		prom.WaitFor(t, expr, 30*time.Second, promtest.Value(want))
	}
	// The pool's range: the /24 less network, broadcast and gateway.
	wait(t, "range gauges of the Docker pool", 30*time.Second, func() (bool, string) {
		text := scrapeAddr(t, addr)
		return strings.Contains(text, `subnet="10.95.0.0/24"} 253`) && strings.Contains(text, `subnet="10.95.0.0/24"} 251`),
			"no medianet_ipam_range_addresses{subnet=\"10.95.0.0/24\"} 253 and _free 251: does dockerplugin.Driver have IPAMNetworks (cmd/medianetd/main.go)?"
	})
	if out, err := dockertest.Docker("rm", "-f", a); err != nil {
		t.Fatalf("docker rm: %v: %s", err, out)
	}
	prom.WaitFor(t, `sum(medianet_operations_total{plugin="docker",operation="NetworkDriver.Leave",code="0"})`, 30*time.Second, promtest.Value(1))
	prom.WaitFor(t, `sum(medianet_ipam_addresses_in_use{node="host-a"})`, 30*time.Second, promtest.Value(1))
}
