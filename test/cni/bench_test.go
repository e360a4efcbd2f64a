package cni_test

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/medianet/medianet/internal/cnitest"

	"github.com/medianet/medianet/internal/nstest"
	"github.com/medianet/medianet/macvlan"
)

// benchPair is medianet and the reference macvlan + host-local on one
// master, each with its own store, at spec version 1.0.0 (the highest
// Debian's reference plugins speak).
type benchPair struct {
	ours, ref inv
	refDir    string
}

func newBenchPair(b *testing.B, existing int) benchPair {
	b.Helper()
	nstest.SkipUnlessRoot(b)
	skipWithoutRef(b, "macvlan", "host-local")
	// Plugins run in the root namespace (no nsenter in the timing); the
	// master is a veth end the benchmark made there, never eth0.
	lan := nstest.NewRootLAN(b, "mncB")
	mnDir, refDir := b.TempDir(), b.TempDir()
	ours := []byte(fmt.Sprintf(`{"cniVersion":"1.0.0","name":"bench","type":"medianet","master":%q,
		"ipam":{"type":"medianet-ipam","subnet":"10.80.0.0/16","node":"bench-node","dataDir":%q}}`, lan.Master, mnDir))
	ref := []byte(fmt.Sprintf(`{"cniVersion":"1.0.0","name":"bench","type":"macvlan","master":%q,
		"ipam":{"type":"host-local","ranges":[[{"subnet":"10.80.0.0/16"}]],"dataDir":%q}}`, lan.Master, refDir))
	cnitest.FillMedianet(b, mnDir, existing)
	cnitest.FillHostLocal(b, filepath.Join(refDir, "bench"), existing)
	return benchPair{
		ours:   inv{host: nstest.Root(), conf: ours},
		ref:    inv{host: nstest.Root(), plugin: filepath.Join(refPlugins, "macvlan"), conf: ref},
		refDir: refDir,
	}
}

// BenchmarkAddDel execs ADD then DEL of one container, interleaving
// medianet (in-process IPAM) and the reference macvlan + host-local, with
// 0 and 1,000 addresses already allocated in each. It also times the
// netlink work alone (macvlan.Create, Configure, Delete in-process) as the
// floor any plugin pays. Metrics: ns per ADD+DEL of each, their ratio,
// and peak RSS of one ADD (the reference's includes its host-local child).
func BenchmarkAddDel(b *testing.B) {
	for _, existing := range []int{0, 1000} {
		b.Run(fmt.Sprintf("existing=%d", existing), func(b *testing.B) {
			p := newBenchPair(b, existing)
			ctr := nstest.NewNS(b, "mncc")
			var ours, ref, floor time.Duration
			n := 0
			for i := 0; b.Loop(); i++ {
				cid := fmt.Sprintf("bench-%d", i)
				ours += addDel(b, p.ours, cid, ctr.Path)
				ref += addDel(b, p.ref, cid, ctr.Path)
				floor += netlinkOnly(b, p.ours, ctr.Path)
				n++
			}
			b.ReportMetric(float64(ours.Nanoseconds())/float64(n), "medianet-ns/adddel")
			b.ReportMetric(float64(ref.Nanoseconds())/float64(n), "reference-ns/adddel")
			b.ReportMetric(float64(floor.Nanoseconds())/float64(n), "netlink-ns/adddel")
			b.ReportMetric(float64(ours)/float64(ref), "medianet/reference")
			if kb, ok := peakRSS(b, p.ours, ctr.Path); ok {
				b.ReportMetric(float64(kb), "medianet-add-maxrss-KB")
			}
			if kb, ok := peakRSS(b, p.ref, ctr.Path); ok {
				b.ReportMetric(float64(kb), "reference-add-maxrss-KB")
			}
		})
	}
}

// BenchmarkBurst40 starts 40 ADDs at once (one container namespace each),
// as a node does when a deployment scales up, then 40 DELs; medianet and
// the reference in turn, with 1,000 addresses already allocated.
func BenchmarkBurst40(b *testing.B) {
	const burst = 40
	p := newBenchPair(b, 1000)
	ctrs := make([]string, burst)
	for i := range ctrs {
		ctrs[i] = nstest.NewNS(b, "mncc").Path
	}
	var ours, ref time.Duration
	n := 0
	for i := 0; b.Loop(); i++ {
		ours += burstAddDel(b, p.ours, fmt.Sprintf("o%d", i), ctrs)
		ref += burstAddDel(b, p.ref, fmt.Sprintf("r%d", i), ctrs)
		n++
	}
	b.ReportMetric(float64(ours.Nanoseconds())/float64(n), "medianet-ns/burst")
	b.ReportMetric(float64(ref.Nanoseconds())/float64(n), "reference-ns/burst")
	b.ReportMetric(float64(ours)/float64(ref), "medianet/reference")
}

func burstAddDel(b *testing.B, base inv, prefix string, ctrs []string) time.Duration {
	start := time.Now()
	for _, verb := range []string{"ADD", "DEL"} {
		var wg sync.WaitGroup
		errs := make(chan string, len(ctrs))
		for j, ns := range ctrs {
			i := base
			i.verb, i.cid, i.netns = verb, fmt.Sprintf("%s-%d", prefix, j), ns
			wg.Go(func() {
				if c := i.run(b); c.Exit != 0 {
					errs <- fmt.Sprintf("%s %s: %v", verb, i.cid, c)
				}
			})
		}
		wg.Wait()
		close(errs)
		for e := range errs {
			b.Fatal(e)
		}
	}
	return time.Since(start)
}

func addDel(b *testing.B, base inv, cid, netns string) time.Duration {
	b.Helper()
	add := base
	add.verb, add.cid, add.netns = "ADD", cid, netns
	del := add
	del.verb = "DEL"
	start := time.Now()
	add.mustRun(b)
	del.mustRun(b)
	return time.Since(start)
}

// netlinkOnly times the link work of one container in-process.
func netlinkOnly(b *testing.B, ours inv, netns string) time.Duration {
	b.Helper()
	master := strings.Split(strings.Split(string(ours.conf), `"master":"`)[1], `"`)[0]
	start := time.Now()
	if _, err := macvlan.Create("", macvlan.Spec{Master: master}, netns, "eth0"); err != nil {
		b.Fatal(err)
	}
	cfg := macvlan.Config{Addresses: []netip.Prefix{netip.MustParsePrefix("10.80.255.1/16")}}
	if err := macvlan.Configure(netns, "eth0", cfg); err != nil {
		b.Fatal(err)
	}
	if err := macvlan.Delete(netns, "eth0"); err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

// peakRSS runs one ADD (and its DEL) under /usr/bin/time and returns the
// ADD's peak RSS in KiB, children included.
func peakRSS(b *testing.B, base inv, netns string) (int64, bool) {
	b.Helper()
	if _, err := os.Stat("/usr/bin/time"); err != nil {
		b.Logf("no /usr/bin/time: peak RSS not measured")
		return 0, false
	}
	add := base
	add.verb, add.cid, add.netns = "ADD", "rss-probe", netns
	c0 := add.cmd()
	cmd := exec.Command("/usr/bin/time", append([]string{"-f", "%M", c0.Path}, c0.Args[1:]...)...)
	cmd.Env, cmd.Stdin = c0.Env, c0.Stdin
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Run(); err != nil {
		b.Fatalf("ADD under /usr/bin/time: %v %s", err, errb.String())
	}
	del := add
	del.verb = "DEL"
	del.mustRun(b)
	fields := strings.Fields(errb.String())
	kb, err := strconv.ParseInt(fields[len(fields)-1], 10, 64)
	if err != nil {
		b.Fatalf("parse /usr/bin/time output %q: %v", errb.String(), err)
	}
	return kb, true
}
