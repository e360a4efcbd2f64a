package sim

import (
	"os"
	"path/filepath"
	"testing"
)

// TestRegressions replays every minimal failing case of the etcd world
// saved under testdata/: each must pass. TestKube replays the kube
// world's ("source kube").
func TestRegressions(t *testing.T) {
	testRegressions(t, testRunner(t), "")
}

// testRegressions replays the saved cases whose source is source with r.
func testRegressions(t *testing.T, r *Runner, source string) {
	files, _ := filepath.Glob("testdata/*.steps")
	if len(files) == 0 {
		t.Fatal("no regression replays under testdata/")
	}
	for _, path := range files {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		rp, err := ReadReplay(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if rp.Source != source {
			continue
		}
		t.Run(filepath.Base(path), func(t *testing.T) {
			v, err := r.Replay(rp)
			if err != nil {
				t.Fatal(err)
			}
			if v != nil {
				t.Errorf("seed %d, %d steps: %v", rp.Seed, len(rp.Steps), v)
			}
		})
	}
}
