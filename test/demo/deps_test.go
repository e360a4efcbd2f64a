package demo_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// fakeTools are stand-ins for the machine's package manager and process
// tools, put first in PATH: each records its arguments in $DEPS_LOG. The
// real apt-get would change the machine; the real script runs in
// `make test` (deps), where it only checks.
var fakeTools = map[string]string{
	// dpkg-query -W -f=... PKG: installed unless PKG is in $FAKE_MISSING.
	"dpkg-query": `pkg=${!#}; case " $FAKE_MISSING " in *" $pkg "*) exit 1;; esac; printf 'install ok installed'`,
	// apt-get notes whether a daemon start would be refused (policy-rc.d
	// exits 101) at the moment it installs.
	"apt-get": `echo "apt-get $*" >>"$DEPS_LOG"
if [ "$1" = install ] || [ "$2" = install ]; then
	if [ -x "$DEPS_POLICY_RC_D" ]; then "$DEPS_POLICY_RC_D" etcd start; echo "policy-rc.d exit $?" >>"$DEPS_LOG"; else echo "no policy-rc.d" >>"$DEPS_LOG"; fi
	[ -z "$FAKE_APT_FAIL" ] || exit 100
fi`,
	"id":        `echo 0`,
	"docker":    `echo "docker $*" >>"$DEPS_LOG"`,
	"pkill":     `echo "pkill $*" >>"$DEPS_LOG"`,
	"killall":   `echo "killall $*" >>"$DEPS_LOG"`,
	"kill":      `echo "kill $*" >>"$DEPS_LOG"`,
	"systemctl": `echo "systemctl $*" >>"$DEPS_LOG"`,
}

// TestDepsScriptIsSafe runs scripts/deps.sh with fake package tools: it
// installs only what is missing, holds packaged daemons back during the
// install with a policy-rc.d it removes afterwards (also when the install
// fails), keeps a policy-rc.d the machine already has byte for byte, and
// kills nothing.
func TestDepsScriptIsSafe(t *testing.T) {
	script, err := filepath.Abs("../../scripts/deps.sh")
	if err != nil {
		t.Fatal(err)
	}
	const machinePolicy = "#!/bin/sh\n# the machine's own policy\nexit 0\n"
	for _, tc := range []struct {
		name       string
		missing    string
		existing   string // policy-rc.d content before the run, "" for none
		aptFails   bool
		wantExit   int
		wantLog    []string
		wantNoLog  []string
		wantPolicy string // content after the run, "" for none
	}{
		{name: "everything installed: only checks", wantNoLog: []string{"apt-get"}},
		{name: "missing packages, no policy-rc.d", missing: "containerd prometheus",
			wantLog: []string{"apt-get update", "apt-get install -y -qq containerd prometheus", "policy-rc.d exit 101"}},
		{name: "missing packages, the machine's policy-rc.d", missing: "coturn", existing: machinePolicy,
			wantLog: []string{"apt-get install -y -qq coturn", "policy-rc.d exit 0"}, wantPolicy: machinePolicy},
		{name: "install fails: the hold is still lifted", missing: "coturn", aptFails: true, wantExit: 100,
			wantLog: []string{"policy-rc.d exit 101"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			bin := filepath.Join(dir, "bin")
			if err := os.Mkdir(bin, 0o755); err != nil {
				t.Fatal(err)
			}
			for name, body := range fakeTools {
				if err := os.WriteFile(filepath.Join(bin, name), []byte("#!/usr/bin/env bash\n"+body+"\n"), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			policy, logFile := filepath.Join(dir, "policy-rc.d"), filepath.Join(dir, "log")
			if tc.existing != "" {
				if err := os.WriteFile(policy, []byte(tc.existing), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			cmd := exec.Command("bash", script, "packages")
			cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "DEPS_LOG="+logFile,
				"DEPS_POLICY_RC_D="+policy, "FAKE_MISSING="+tc.missing)
			if tc.aptFails {
				cmd.Env = append(cmd.Env, "FAKE_APT_FAIL=1")
			}
			out, err := cmd.CombinedOutput()
			if code := cmd.ProcessState.ExitCode(); code != tc.wantExit {
				t.Fatalf("deps.sh exit %d (%v), want %d:\n%s", code, err, tc.wantExit, out)
			}
			b, _ := os.ReadFile(logFile)
			log := string(b)
			for _, w := range tc.wantLog {
				if !strings.Contains(log, w) {
					t.Errorf("log lacks %q:\n%s", w, log)
				}
			}
			for _, w := range append(tc.wantNoLog, "pkill", "killall", "kill ", "systemctl stop") {
				if strings.Contains(log, w) {
					t.Errorf("log has %q:\n%s", w, log)
				}
			}
			got, err := os.ReadFile(policy)
			if os.IsNotExist(err) {
				got = nil
			} else if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.wantPolicy {
				t.Errorf("policy-rc.d after the run = %q, want %q", got, tc.wantPolicy)
			}
		})
	}
}
