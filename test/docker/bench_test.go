package docker

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/medianet/medianet/internal/dockertest"
	"github.com/medianet/medianet/internal/nstest"
)

// BenchmarkStartRemove20 times starting and removing 20 containers on a
// medianet network and on Docker's built-in macvlan driver (each on its
// own throwaway parent) in the same run, and reports both and their ratio
// (medianet / macvlan; the target is at most 1.1). The two drivers take
// turns container by container, so a change in machine load during the run
// weighs on both alike.
func BenchmarkStartRemove20(b *testing.B) {
	require(b)
	lanM, lanB := nstest.NewRootLAN(b, "dkb"), nstest.NewRootLAN(b, "dkb")
	startMedianetd(b)
	medianet, builtin := uniqueName("mnbM"), uniqueName("mnbB")
	network(b, medianet, "-d", "medianet", "--ipam-driver", "medianet", "--subnet", "10.231.7.0/24", "-o", "parent="+lanM.Master)
	network(b, builtin, "-d", "macvlan", "--subnet", "10.231.8.0/24", "-o", "parent="+lanB.Master)
	nets := [2]string{medianet, builtin}
	// Warm both paths (image, plugin connection) outside the timing.
	for _, n := range nets {
		id := start(b, n)
		checkAddrs(b, id)
		remove(b, id)
	}

	var spent [2]time.Duration // medianet, built-in macvlan
	b.ResetTimer()
	for i := range b.N {
		var ids [2][]string
		for k := range 20 {
			for j := range 2 {
				d := (i + k + j) % 2 // alternate which driver goes first
				t0 := time.Now()
				ids[d] = append(ids[d], start(b, nets[d]))
				spent[d] += time.Since(t0)
			}
		}
		for j := range 2 {
			d := (i + j) % 2
			checkAddrs(b, ids[d]...)
			t0 := time.Now()
			remove(b, ids[d]...)
			spent[d] += time.Since(t0)
		}
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(spent[0].Seconds()*1000/n, "medianet-ms/20")
	b.ReportMetric(spent[1].Seconds()*1000/n, "macvlan-ms/20")
	b.ReportMetric(spent[0].Seconds()/spent[1].Seconds(), "ratio")
	if got := macvlansOn(b, lanM.Master); len(got) != 0 {
		b.Errorf("macvlans left on %s: %v", lanM.Master, got)
	}
}

// start runs one container on net and returns its ID.
func start(b *testing.B, net string) string {
	b.Helper()
	id, err := dockertest.Docker("run", "-d", "--label", "medianet-test=1", "--network", net, dockertest.Image, "sleep", "600")
	if err != nil {
		b.Fatal(err)
	}
	return id
}

// checkAddrs fails b unless every container got an address.
func checkAddrs(b *testing.B, ids ...string) {
	b.Helper()
	for _, id := range ids {
		out := docker(b, "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", id)
		if _, err := netip.ParseAddr(strings.TrimSpace(out)); err != nil {
			b.Fatalf("container %.12s has no address: %q", id, out)
		}
	}
}

// remove removes containers with one docker rm.
func remove(b *testing.B, ids ...string) {
	b.Helper()
	docker(b, append([]string{"rm", "-f"}, ids...)...)
}
