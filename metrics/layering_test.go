package metrics

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoCNI: metrics knows nothing of CNI; reading CNI configurations is
// the node agent's adapter (package agent), as docs/design.md's layering
// rules say.
func TestNoCNI(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, p := range strings.Fields(string(out)) {
		if strings.HasPrefix(p, "github.com/medianet/medianet/cni") || strings.HasPrefix(p, "github.com/containernetworking/") {
			t.Errorf("metrics depends on %s: CNI belongs to package agent", p)
		}
	}
}
