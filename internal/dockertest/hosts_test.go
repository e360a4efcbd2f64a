package dockertest

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestHosts: two hosts answer on their own sockets with their own names
// and engine IDs, and a container on one reaches the other's address over
// the LAN. When the hosts go (even with a container and dockerd killed
// under them), nothing of theirs is left: no process in their
// namespaces, no namespace, no cgroup, no directory.
func TestHosts(t *testing.T) {
	RequireHosts(t)
	var nsPaths, dirs, cgroups []string
	var nsIDs []syscall.Stat_t
	t.Run("two hosts", func(t *testing.T) {
		hs := NewHosts(t, 2)
		ids := map[string]string{}
		for _, h := range hs.Hosts {
			nsPaths, dirs, cgroups = append(nsPaths, h.NS.Path), append(dirs, h.Dir), append(cgroups, h.cgroupParent)
			var st syscall.Stat_t
			if err := syscall.Stat(h.NS.Path, &st); err != nil {
				t.Fatal(err)
			}
			nsIDs = append(nsIDs, st)
			out := h.MustDocker(t, "info", "--format", "{{.Name}} {{.ID}}")
			name, id, _ := strings.Cut(out, " ")
			if name != h.Name {
				t.Errorf("host %s calls itself %q", h.Name, name)
			}
			if other, dup := ids[id]; dup {
				t.Errorf("hosts %s and %s share the engine ID %s", other, h.Name, id)
			}
			ids[id] = h.Name
		}
		a, b := hs.Hosts[0], hs.Hosts[1]
		id := a.MustDocker(t, "run", "-d", "--network", "host", Image, "sleep", "600")
		if out, err := a.Docker("exec", id, "ping", "-c", "1", "-W", "2", b.Addr.String()); err != nil {
			t.Errorf("%s cannot reach %s at %s: %v\n%s", a.Name, b.Name, b.Addr, err, out)
		}
		b.MustDocker(t, "run", "-d", Image, "sleep", "600") // left running
		b.Kill()
	})
	for _, p := range append(nsPaths, dirs...) {
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s left behind (%v)", p, err)
		}
	}
	for _, g := range cgroups {
		if _, err := os.Stat(filepath.Join("/sys/fs/cgroup/pids", g)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("cgroup %s left behind (%v)", g, err)
		}
	}
	for i, st := range nsIDs {
		if left, err := namespaceProcs(st.Dev, st.Ino); err != nil || len(left) > 0 {
			t.Errorf("processes %v left in the namespace of %s (%v)", left, nsPaths[i], err)
		}
	}
	if len(nsIDs) != 2 {
		t.Fatalf("hosts made %d namespaces, want 2", len(nsIDs))
	}
}
