package cni

import (
	"os"
	"path/filepath"
	"testing"
)

// TestFindPluginAbsoluteOnly: a delegated IPAM plugin is looked up only
// in absolute CNI_PATH entries.
func TestFindPluginAbsoluteOnly(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "host-local"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	wd, _ := os.Getwd()
	t.Cleanup(func() { _ = os.Chdir(wd) })
	if err := os.Chdir(filepath.Dir(dir)); err != nil {
		t.Fatal(err)
	}
	rel := filepath.Base(dir)
	tests := []struct {
		dirs string
		want string // "" for not found
	}{
		{dir, filepath.Join(dir, "host-local")},
		{"/nonexistent:" + dir, filepath.Join(dir, "host-local")},
		{rel, ""},
		{":" + rel, ""},
		{"", ""},
	}
	for _, tc := range tests {
		got, err := findPlugin(tc.dirs, "host-local")
		if got != tc.want || (tc.want == "") != (err != nil) {
			t.Errorf("findPlugin(%q) = %q, %v; want %q", tc.dirs, got, err, tc.want)
		}
	}
}
