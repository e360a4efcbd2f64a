package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAgentModeFlags: --cni-conf-dir without --socket turns the Docker
// plugin off (and only then); --web.config.file needs --metrics-listen.
func TestAgentModeFlags(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantDocker bool
		wantErr    string
	}{
		{"docker only", []string{"--node", "n"}, true, ""},
		{"node agent", []string{"--node", "n", "--cni-conf-dir", "/etc/cni/net.d"}, false, ""},
		{"docker and cni", []string{"--node", "n", "--cni-conf-dir", "/etc/cni/net.d", "--socket", "/run/x.sock"}, true, ""},
		{"no socket at all", []string{"--node", "n", "--socket", ""}, false, "nothing to do"},
		{"web config alone", []string{"--node", "n", "--web.config.file", "/etc/web.yml"}, false, "--web.config.file needs --metrics-listen"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := parseFlags(tt.args)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if f.docker != tt.wantDocker {
				t.Errorf("docker = %t, want %t", f.docker, tt.wantDocker)
			}
		})
	}
}

// TestBadWebConfig: a web configuration that does not hold (a password
// that is not a bcrypt hash, a missing file) stops medianetd at start,
// naming the flag.
func TestBadWebConfig(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "web.yml")
	if err := os.WriteFile(bad, []byte("basic_auth_users:\n  prometheus: plaintext\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, file := range []string{bad, filepath.Join(dir, "missing.yml")} {
		err := run([]string{"--socket", "", "--node", "n", "--cni-conf-dir", dir, "--data-dir", filepath.Join(dir, "data"),
			"--metrics-listen", "127.0.0.1:0", "--web.config.file", file})
		if err == nil || !strings.Contains(err.Error(), "--web.config.file") {
			t.Errorf("run with %s: %v, want an error naming --web.config.file", file, err)
		}
	}
}
