package conflict_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/medianet/medianet/internal/cnitest"
	"github.com/medianet/medianet/internal/nstest"
)

// BenchmarkADDConflictCheck times the medianet plugin's ADD (exec'd as a
// runtime does, in the node's namespace) with the conflict check off
// ("0") and at its default, interleaved in one run on one LAN where
// nobody answers (the common case, and the probe's whole wait), and
// reports both and their ratio: the check's price. Each ADD is followed
// by its DEL, untimed.
func BenchmarkADDConflictCheck(b *testing.B) {
	nstest.SkipUnlessRoot(b)
	lan := nstest.NewLAN(b, "mcfB")
	dir := b.TempDir()
	confs := map[string][]byte{}
	for _, check := range []string{"0", ""} {
		keys := ""
		if check != "" {
			keys = fmt.Sprintf(`,"conflictCheck":%q`, check)
		}
		name := "check-" + map[string]string{"0": "off", "": "default"}[check]
		confs[check] = fmt.Appendf(nil, `{"cniVersion":"1.1.0","name":%q,"type":"medianet","master":%q,
  "ipam":{"type":"medianet-ipam","subnet":"10.92.0.0/16","node":"node-a","dataDir":%q%s}}`, name, lan.Master, dir, keys)
	}
	ctr := nstest.NewNS(b, "mcfc")
	run := func(verb, cid string, conf []byte) time.Duration {
		start := time.Now()
		c := cnitest.Exec{Bin: filepath.Join(binDir, "medianet"), NS: lan.Host.Name, Verb: verb, ContainerID: cid, IfName: "eth0",
			Netns: ctr.Path, Path: binDir, Conf: conf}.Run()
		if c.Exit != 0 {
			b.Fatalf("%s %s: %s", verb, cid, c)
		}
		return time.Since(start)
	}
	var off, on time.Duration
	n := 0
	for i := 0; b.Loop(); i++ {
		cid := fmt.Sprintf("b%d", i)
		off += run("ADD", cid, confs["0"])
		run("DEL", cid, confs["0"])
		on += run("ADD", cid, confs[""])
		run("DEL", cid, confs[""])
		n++
	}
	b.ReportMetric(float64(off.Microseconds())/1000/float64(n), "off-ms/add")
	b.ReportMetric(float64(on.Microseconds())/1000/float64(n), "default-ms/add")
	b.ReportMetric(float64(on)/float64(off), "default/off")
}
