package sim

import (
	"os"
	"path/filepath"
	"testing"
)

// TestRegressions replays every minimal failing case saved under
// testdata/: each must pass.
func TestRegressions(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.steps")
	if len(files) == 0 {
		t.Fatal("no regression replays under testdata/")
	}
	r := testRunner(t)
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			rp, err := ReadReplay(f)
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
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
