package main

import (
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
