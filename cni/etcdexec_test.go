package cni

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/medianet/medianet/ipam"
)

// TestFindEtcdHelperAbsoluteOnly: only absolute CNI_PATH entries are
// searched. A helper reachable through a relative entry (resolved against
// the working directory) or an empty one (a bare name exec would look up
// in PATH) is never returned.
func TestFindEtcdHelperAbsoluteOnly(t *testing.T) {
	work := t.TempDir()
	t.Chdir(work)
	install := func(dir string) string {
		t.Helper()
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, EtcdHelper)
		if err := os.WriteFile(p, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	install(work)                       // what an empty entry would find
	install(filepath.Join(work, "rel")) // what "rel" would find
	good := install(filepath.Join(t.TempDir(), "bin"))
	empty := t.TempDir() // absolute, but no helper
	notExec := filepath.Join(t.TempDir(), "noexec")
	if err := os.MkdirAll(notExec, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(notExec, EtcdHelper), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, cniPath, want string // want "" means an error
	}{
		{"absolute entry", filepath.Dir(good), good},
		{"empty entry ignored", ":" + filepath.Dir(good), good},
		{"relative entry ignored", "rel:" + filepath.Dir(good), good},
		{"dot entry ignored", ".:" + empty + ":" + filepath.Dir(good), good},
		{"only an empty entry", "", ""},
		{"only a leading colon", ":" + empty, ""},
		{"only relative entries", "rel:.:./rel", ""},
		{"not executable", notExec, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := FindEtcdHelper(tt.cniPath)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("CNI_PATH %q: got %q, want an error", tt.cniPath, got)
				}
				if !errors.Is(err, ipam.ErrConfig) || !strings.Contains(err.Error(), "absolute") {
					t.Errorf("CNI_PATH %q: error %q: want a config error saying only absolute entries count", tt.cniPath, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("CNI_PATH %q: got %q, %v; want %q", tt.cniPath, got, err, tt.want)
			}
			if !filepath.IsAbs(got) {
				t.Errorf("got %q, want an absolute path", got)
			}
		})
	}
}

// TestHelperFor: the helper a configuration is forwarded to.
func TestHelperFor(t *testing.T) {
	for _, tt := range []struct{ name, conf, want string }{
		{"static", `{"ipam":{"subnet":"10.0.0.0/24"}}`, ""},
		{"etcd", `{"ipam":{"etcd":{"endpoints":["http://127.0.0.1:2379"]}}}`, EtcdHelper},
		{"kubernetes", `{"ipam":{"kubernetes":{"kubeconfig":"/etc/medianet/kubeconfig"}}}`, KubeHelper},
		{"kubernetes in-cluster", `{"ipam":{"kubernetes":{}}}`, KubeHelper},
		{"nodeRanges win", `{"ipam":{"kubernetes":{},"nodeRanges":{"a":["10.0.0.0/28"]}}}`, ""},
		{"null", `{"ipam":{"kubernetes":null}}`, ""},
		{"not json", `{`, ""},
	} {
		if got := helperFor([]byte(tt.conf)); got != tt.want {
			t.Errorf("%s: helperFor = %q, want %q", tt.name, got, tt.want)
		}
	}
}
