package ipam_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/medianet/medianet/internal/cnitest"
)

const hostLocal = "/usr/lib/cni/host-local"

// BenchmarkExecAddDel execs medianet-ipam and the reference host-local,
// ADD then DEL, each with 1,000 addresses already allocated in a /16, in
// the same run. Metrics: ns per ADD+DEL pair for each, their ratio, and the
// peak RSS of one ADD process.
func BenchmarkExecAddDel(b *testing.B) {
	if _, err := os.Stat(hostLocal); err != nil {
		b.Skipf("reference plugin %s missing (Debian containernetworking-plugins): %v", hostLocal, err)
	}
	const existing, rounds = 1000, 10
	mnDir, hlDir := b.TempDir(), b.TempDir()
	mnConf := fmt.Appendf(nil, `{"cniVersion":"1.0.0","name":"bench","type":"medianet-ipam","ipam":{"type":"medianet-ipam","subnet":"10.80.0.0/16","node":"bench-node","dataDir":%q}}`, mnDir)
	hlConf := fmt.Appendf(nil, `{"cniVersion":"1.0.0","name":"bench","type":"host-local","ipam":{"type":"host-local","ranges":[[{"subnet":"10.80.0.0/16"}]],"dataDir":%q}}`, hlDir)
	cnitest.FillMedianet(b, mnDir, existing)
	cnitest.FillHostLocal(b, filepath.Join(hlDir, "bench"), existing)
	mn, hl := bin("medianet-ipam"), hostLocal
	var mnTime, hlTime time.Duration
	pairs := 0
	for i := 0; b.Loop(); i++ {
		for r := range rounds {
			cid := fmt.Sprintf("bench-%d-%d", i, r)
			mnTime += addDel(b, mn, cid, mnConf)
			hlTime += addDel(b, hl, cid, hlConf)
			pairs++
		}
	}
	b.ReportMetric(float64(mnTime.Nanoseconds())/float64(pairs), "medianet-ns/adddel")
	b.ReportMetric(float64(hlTime.Nanoseconds())/float64(pairs), "hostlocal-ns/adddel")
	b.ReportMetric(float64(hlTime)/float64(mnTime), "hostlocal/medianet")
	if rss, ok := peakRSS(b, mn, mnConf); ok {
		b.ReportMetric(float64(rss), "medianet-add-maxrss-KB")
	}
	if rss, ok := peakRSS(b, hl, hlConf); ok {
		b.ReportMetric(float64(rss), "hostlocal-add-maxrss-KB")
	}
}

// peakRSS runs one ADD under /usr/bin/time and returns its peak RSS in KiB.
// (The rusage of a child started by this process would count the test
// binary's own pages from before exec.)
func peakRSS(b *testing.B, plug string, conf []byte) (int64, bool) {
	b.Helper()
	if _, err := os.Stat("/usr/bin/time"); err != nil {
		b.Logf("no /usr/bin/time: peak RSS not measured")
		return 0, false
	}
	cmd := exec.Command("/usr/bin/time", "-f", "%M", plug)
	cmd.Env = []string{"CNI_COMMAND=ADD", "CNI_CONTAINERID=rss-probe", "CNI_NETNS=/var/run/netns/none", "CNI_IFNAME=eth0", "CNI_PATH=/usr/lib/cni"}
	cmd.Stdin = bytes.NewReader(conf)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Run(); err != nil {
		b.Fatalf("%s ADD under /usr/bin/time: %v %s", plug, err, errb.String())
	}
	lines := strings.Fields(errb.String())
	kb, err := strconv.ParseInt(lines[len(lines)-1], 10, 64)
	if err != nil {
		b.Fatalf("parse /usr/bin/time output %q: %v", errb.String(), err)
	}
	return kb, true
}

func addDel(b *testing.B, plug, cid string, conf []byte) time.Duration {
	b.Helper()
	start := time.Now()
	add, err := plugin(plug, "ADD", cid, "eth0", conf)
	if err != nil || add.Exit != 0 {
		b.Fatalf("%s ADD: %v %s %s", plug, err, add.Stdout, add.Stderr)
	}
	del, err := plugin(plug, "DEL", cid, "eth0", conf)
	if err != nil || del.Exit != 0 {
		b.Fatalf("%s DEL: %v %s", plug, err, del.Stdout)
	}
	return time.Since(start)
}
