// Package media_test calls Debian's Janus, in containers of a Docker host
// of the test's own, from a pion/webrtc client behind each of natlab's
// NATs: Janus on Docker's default bridge, on a medianet network (through
// Docker's driver, and through the CNI plugin under podman) and with
// host networking; Janus offering (Streaming) and the client offering
// (EchoTest); TURN as the fallback; and natprobe check's prediction from
// inside each Janus container against what the calls did (issue 22).
package media_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/medianet/medianet/internal/janustest"
)

func TestMain(m *testing.M) {
	janustest.MaybeRunClient()
	os.Exit(m.Run())
}

// binDir is where make build put the binaries (MEDIANET_BIN).
func binDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("MEDIANET_BIN")
	if dir == "" {
		t.Fatal("MEDIANET_BIN is not set: run make build and set it to the bin directory (make test-e2e does)")
	}
	for _, b := range []string{"natprobe", "medianetd"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			t.Fatalf("%s: run make build first", filepath.Join(dir, b))
		}
	}
	return dir
}
