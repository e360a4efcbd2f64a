package dockertest

import (
	"os"
	"path/filepath"
	"strings"
)

// LogPath is dockerd's log (managed plugins log there too).
func (h *Host) LogPath() string { return filepath.Join(h.Dir, "dockerd.log") }

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// keepLogs copies the host's logs to dir/<test>/<host>/ (env
// MEDIANET_KEEP_LOGS), for a look after the test has gone.
func (h *Host) keepLogs(dir string) {
	dst := filepath.Join(dir, strings.ReplaceAll(h.t.Name(), "/", "_"), h.Name)
	if err := os.MkdirAll(dst, 0o755); err != nil {
		h.t.Logf("keep logs: %v", err)
		return
	}
	for _, f := range []string{"dockerd.log", "containerd.log"} {
		if raw, err := os.ReadFile(filepath.Join(h.Dir, f)); err == nil {
			_ = os.WriteFile(filepath.Join(dst, f), raw, 0o644)
		}
	}
	h.t.Logf("%s: logs kept in %s", h.Name, dst)
}

// pluginCalls returns the last n lines a managed plugin logged in the
// dockerd log at path, less the frequent capability and info calls.
func pluginCalls(path string, n int) string {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	var out []string
	for line := range strings.SplitSeq(string(raw), "\n") {
		if !strings.Contains(line, " plugin=") || strings.Contains(line, "GetCapabilities") ||
			strings.Contains(line, "GetDefaultAddressSpaces") || strings.Contains(line, "EndpointOperInfo") {
			continue
		}
		if i := strings.Index(line, "msg=\""); i >= 0 {
			line = line[i+5:]
		}
		if i := strings.LastIndex(line, " plugin="); i >= 0 {
			line = line[:i]
		}
		out = append(out, strings.ReplaceAll(line, `\"`, `"`))
	}
	return strings.Join(out[max(0, len(out)-n):], "\n")
}
