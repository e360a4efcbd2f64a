package k8s_test

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/medianet/medianet/internal/containerdtest"
)

// benchPods is how many pods each network starts per benchmark iteration.
const benchPods = 10

// refConflist is the reference setup medianet is compared with: Debian's
// macvlan with host-local, on the same master, same containerd.
func refConflist(master, dataDir string) []byte {
	b, _ := json.Marshal(map[string]any{"cniVersion": "1.0.0", "name": "refmacvlan", "plugins": []any{map[string]any{
		"type": "macvlan", "master": master, "mode": "bridge",
		"ipam": map[string]any{"type": "host-local", "dataDir": dataDir, "ranges": [][]map[string]string{{{
			"subnet": subnet.String(), "gateway": gateway.String(), "rangeStart": "10.77.0.64", "rangeEnd": "10.77.0.127"}}}},
	}}})
	return b
}

// BenchmarkCRIPodStart starts pods through containerd's CRI, as kubelet
// does, on medianet and on the reference macvlan + host-local: benchPods
// of each per iteration, interleaved, one at a time, on the same
// containerd and master. It reports pods per second of each and their
// ratio (above 1: medianet starts pods faster), the CNI time per pod
// (containerd's own sandbox_create_network timer: loopback and the
// network's plugins) with its ratio and its share of the RunPodSandbox
// time, and medianet's ADD time from its log.
func BenchmarkCRIPodStart(b *testing.B) {
	n := newNode(b, nil)
	n.InstallPlugins("macvlan", "host-local")
	nets := []struct{ name, network string }{{"medianet", "media"}, {"refmacvlan", "refmacvlan"}}
	conflists := map[string][]byte{
		"medianet":   medianetConflist(n.lan.Master, n.dataDir, n.logFile, nil),
		"refmacvlan": refConflist(n.lan.Master, b.TempDir()),
	}
	start, cni := map[string]time.Duration{}, map[string]containerdtest.Timer{}
	b.ResetTimer()
	for i := range b.N {
		for _, nw := range nets {
			b.StopTimer()
			n.WriteConflist("10-media.conflist", conflists[nw.name])
			if err := n.WaitNetwork(fmt.Sprintf(`"name":%q`, nw.network)); err != nil {
				b.Fatal(err)
			}
			before := n.networkTimer(b)
			b.StartTimer()
			var ids []string
			for j := range benchPods {
				t0 := time.Now()
				id, err := n.RunPod(containerdtest.Pod{Name: fmt.Sprintf("%s-%d-%d", nw.name, i, j), Namespace: "bench"})
				start[nw.name] += time.Since(t0)
				if err != nil {
					b.Fatal(err)
				}
				ids = append(ids, id)
			}
			b.StopTimer()
			d := n.networkTimer(b).Sub(before)
			cni[nw.name] = containerdtest.Timer{Sum: cni[nw.name].Sum + d.Sum, Count: cni[nw.name].Count + d.Count}
			for _, id := range ids {
				if err := n.StopRemove(id); err != nil {
					b.Fatal(err)
				}
			}
			b.StartTimer()
		}
	}
	b.StopTimer()
	per := func(name string) float64 { return start[name].Seconds() / float64(b.N*benchPods) }
	b.ReportMetric(1/per("medianet"), "medianet-pods/s")
	b.ReportMetric(1/per("refmacvlan"), "refmacvlan-pods/s")
	b.ReportMetric(per("refmacvlan")/per("medianet"), "speed-ratio")
	for _, nw := range nets {
		b.ReportMetric(cni[nw.name].Mean()*1e3, nw.name+"-cni-ms")
		b.ReportMetric(100*cni[nw.name].Mean()/per(nw.name), nw.name+"-cni-share-%")
	}
	b.ReportMetric(cni["refmacvlan"].Mean()/cni["medianet"].Mean(), "cni-speed-ratio")
	add := meanTook(b, n.logFile, "ADD")
	b.ReportMetric(add.Seconds()*1e3, "medianet-add-ms")
}

// networkTimer reads containerd's timer of the CNI setup of sandboxes.
func (n *node) networkTimer(b *testing.B) containerdtest.Timer {
	b.Helper()
	t, err := n.Timer("containerd_cri_sandbox_create_network_seconds")
	if err != nil {
		b.Fatal(err)
	}
	return t
}

// meanTook is the mean "took=" of medianet's log lines for verb.
func meanTook(b *testing.B, logFile, verb string) time.Duration {
	b.Helper()
	data, err := os.ReadFile(logFile)
	if err != nil {
		b.Fatal(err)
	}
	var sum time.Duration
	count := 0
	for _, l := range strings.Split(string(data), "\n") {
		if !strings.Contains(l, " "+verb+" ") {
			continue
		}
		_, rest, ok := strings.Cut(l, " took=")
		if !ok {
			continue
		}
		if d, err := time.ParseDuration(strings.Fields(rest)[0]); err == nil {
			sum += d
			count++
		}
	}
	if count == 0 {
		b.Fatalf("no %s lines in %s", verb, logFile)
	}
	return sum / time.Duration(count)
}
