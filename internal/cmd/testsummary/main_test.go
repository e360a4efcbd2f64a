package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// sampleModule writes a module whose tests pass, skip for a kernel
// feature, skip for a missing binary, and (with fail) fail.
func sampleModule(t *testing.T, fail bool) string {
	t.Helper()
	dir := t.TempDir()
	src := `package sample

import "testing"

func TestPass(t *testing.T) {}
func TestVLAN(t *testing.T) { t.Skip("kernel cannot create 802.1q links") }
func TestPodman(t *testing.T) { t.Skip("podman not installed") }
`
	if fail {
		src += "func TestBroken(t *testing.T) { t.Errorf(\"got 1, want 2\") }\n"
	}
	for name, text := range map[string]string{"go.mod": "module example.com/sample\n\ngo 1.22\n", "sample_test.go": src} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestRunRealGoTest drives the real go command through run: exit codes
// in normal and strict mode, the record, and the report built from it.
func TestRunRealGoTest(t *testing.T) {
	t.Setenv("MEDIANET_STRICT_SKIPS", "") // strict only where a case asks (CI sets it)
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is not in PATH: %v", err)
	}
	allowOne := filepath.Join(t.TempDir(), "allowed-skips")
	if err := os.WriteFile(allowOne, []byte("802\\.1q -- the CI kernel has no 802.1q\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	allowBoth := filepath.Join(t.TempDir(), "allowed-skips")
	if err := os.WriteFile(allowBoth, []byte("802\\.1q -- no vlan\nTestPodman: .*podman -- (for this test only)\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		fail     bool
		flags    []string
		wantCode int
		wantOut  []string
	}{
		{"normal mode: skips are counted", false, nil, 0,
			[]string{"ok  \texample.com/sample", "1 passed, 0 failed, 2 skipped", "skip example.com/sample.TestPodman"}},
		{"strict: a skip outside the allow-list fails", false, []string{"-strict", "-allow", allowOne}, 1,
			[]string{"UNEXPECTED SKIP example.com/sample.TestPodman", "skip (allowed, " + allowOne + ":1) example.com/sample.TestVLAN", "strict mode: 1 test(s)"}},
		{"strict: every skip allowed", false, []string{"-strict", "-allow", allowBoth}, 0,
			[]string{"1 passed, 0 failed, 2 skipped"}},
		{"a failing test", true, []string{"-allow", allowBoth}, 1,
			[]string{"--- FAIL: TestBroken", "got 1, want 2", "FAIL example.com/sample.TestBroken"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := sampleModule(t, tc.fail)
			record := filepath.Join(t.TempDir(), "run.json")
			args := append(append([]string{"-name", "unit", "-record", record}, tc.flags...),
				"--", goBin, "-C", dir, "test", "-json", "-count=1", "./...")
			var out, errOut strings.Builder
			if code := run(args, &out, &errOut); code != tc.wantCode {
				t.Fatalf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.wantCode, out.String(), errOut.String())
			}
			for _, w := range tc.wantOut {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
			var report strings.Builder
			if code := run([]string{"-report", record, record}, &report, &errOut); code != 0 {
				t.Fatalf("-report exit code %d: %s", code, errOut.String())
			}
			if !strings.Contains(report.String(), "4 skipped") || !strings.Contains(report.String(), "2 skipped: podman not installed") {
				t.Errorf("report of the run twice lacks 4 skips, 2 for podman:\n%s", report.String())
			}
		})
	}
}

func TestRunUsageErrors(t *testing.T) {
	badAllow := filepath.Join(t.TempDir(), "allowed-skips")
	if err := os.WriteFile(badAllow, []byte("802\\.1q\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"no command", nil, "nothing to run"},
		{"allow-list without a reason", []string{"-allow", badAllow, "--", "true"}, "allowed-skips:1: want"},
		{"missing allow-list", []string{"-allow", "/nonexistent/allowed-skips", "--", "true"}, "no such file"},
		{"missing record", []string{"-report", "/nonexistent/run.json"}, "no such file"},
		{"command not found", []string{"--", "/nonexistent/go"}, "start"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut strings.Builder
			if code := run(tc.args, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), tc.wantErr) {
				t.Errorf("run(%q) = %d, stderr %q; want 2 and %q", tc.args, code, errOut.String(), tc.wantErr)
			}
		})
	}
}
