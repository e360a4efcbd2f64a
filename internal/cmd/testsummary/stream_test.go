package main

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// ev builds one JSON line of a go test -json stream.
func ev(action, pkg, test, output string) string {
	b, _ := json.Marshal(event{Action: action, Package: pkg, Test: test, Output: output})
	return string(b)
}

// testLines is the stream of one test: its framing, log lines and result.
func testLines(pkg, test, result string, log ...string) []string {
	lines := []string{ev("run", pkg, test, ""), ev("output", pkg, test, "=== RUN   "+test+"\n")}
	for _, l := range log {
		lines = append(lines, ev("output", pkg, test, l))
	}
	return append(lines, ev("output", pkg, test, "--- "+strings.ToUpper(result)+": "+test+" (0.00s)\n"), ev(result, pkg, test, ""))
}

func pkgEnd(pkg, result string) []string {
	word := map[string]string{"pass": "ok  ", "fail": "FAIL"}[result]
	return []string{ev("output", pkg, "", strings.TrimSpace(strings.ToUpper(result[:1])+result[1:])+"\n"),
		ev("output", pkg, "", word+"\t"+pkg+"\t0.1s\n"), ev(result, pkg, "", "")}
}

func concat(parts ...[]string) []string { return slices.Concat(parts...) }

func TestSummarizer(t *testing.T) {
	const pkg = "example.com/m/pkg"
	allow, err := parseAllowList("allow", strings.NewReader("802\\.1q -- no vlan module in the CI kernel\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name         string
		lines        []string
		wantRun      Run // Name, Strict, ExitCode unused
		wantPrinted  []string
		wantSilenced []string // output that must not be printed
	}{{
		name: "pass and skips",
		lines: concat(
			testLines(pkg, "TestA", "pass", "    a_test.go:3: noisy log of a passing test\n"),
			testLines(pkg, "TestVLAN", "skip", "    v_test.go:9: some context\n", "    v_test.go:10: kernel cannot create 802.1q links\n", "        (module 8021q)\n"),
			testLines(pkg, "TestPodman", "skip", "    p_test.go:5: podman not installed\n"),
			pkgEnd(pkg, "pass")),
		wantRun: Run{Passed: 1, Skips: []Skip{
			{Package: "pkg", Test: "TestVLAN", Message: "v_test.go:10: kernel cannot create 802.1q links\n(module 8021q)", Allowed: "no vlan module in the CI kernel", Entry: "allow:1"},
			{Package: "pkg", Test: "TestPodman", Message: "p_test.go:5: podman not installed"}}},
		wantPrinted:  []string{"ok  \texample.com/m/pkg"},
		wantSilenced: []string{"noisy log", "PASS\n"},
	}, {
		name: "a failure prints the test's whole output",
		lines: concat(
			testLines(pkg, "TestA", "pass", "    a_test.go:3: noisy\n"),
			testLines(pkg, "TestB", "fail", "    b_test.go:7: got 1, want 2\n"),
			pkgEnd(pkg, "fail")),
		wantRun:      Run{Passed: 1, Failed: 1, Failures: []string{"pkg.TestB"}},
		wantPrinted:  []string{"=== RUN   TestB", "b_test.go:7: got 1, want 2", "--- FAIL: TestB", "FAIL\texample.com/m/pkg"},
		wantSilenced: []string{"noisy"},
	}, {
		name: "a timeout prints the unfinished test",
		lines: concat(
			[]string{ev("run", pkg, "TestHang", ""), ev("output", pkg, "TestHang", "=== RUN   TestHang\n"),
				ev("output", pkg, "TestHang", "    h_test.go:4: waiting for dockerd\n"),
				ev("output", pkg, "", "panic: test timed out after 1m0s\n")},
			pkgEnd(pkg, "fail")),
		wantRun:     Run{Failed: 1, Failures: []string{"pkg.TestHang (did not finish)"}},
		wantPrinted: []string{"TestHang did not finish", "waiting for dockerd", "panic: test timed out"},
	}, {
		name: "build failure",
		lines: []string{
			`{"ImportPath":"example.com/m/pkg [example.com/m/pkg.test]","Action":"build-output","Output":"pkg/x.go:1:2: syntax error\n"}`,
			`{"ImportPath":"example.com/m/pkg [example.com/m/pkg.test]","Action":"build-fail"}`,
			ev("output", pkg, "", "FAIL\texample.com/m/pkg [build failed]\n"),
			`{"Action":"fail","Package":"example.com/m/pkg","FailedBuild":"example.com/m/pkg [example.com/m/pkg.test]"}`},
		wantRun:     Run{Failures: []string{"pkg: build failed"}},
		wantPrinted: []string{"pkg/x.go:1:2: syntax error", "[build failed]"},
	}, {
		name:        "stream cut short: the command died",
		lines:       concat(testLines(pkg, "TestA", "pass"), []string{ev("run", pkg, "TestB", ""), ev("output", pkg, "TestB", "=== RUN   TestB\n")}),
		wantRun:     Run{Passed: 1, Failed: 1, Failures: []string{"pkg.TestB (did not finish)"}},
		wantPrinted: []string{"TestB did not finish"},
	}, {
		name:        "lines of the go command pass through",
		lines:       []string{"go: downloading example.com/x v1.0.0", ev("skip", "example.com/m/cmd", "", "")},
		wantPrinted: []string{"go: downloading example.com/x v1.0.0"},
	}, {
		name:    "skip without a message",
		lines:   concat(testLines(pkg, "TestNow", "skip"), pkgEnd(pkg, "pass")),
		wantRun: Run{Skips: []Skip{{Package: "pkg", Test: "TestNow", Message: "(no message)"}}},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			var out strings.Builder
			s := newSummarizer(&out, allow, "example.com/m")
			for _, l := range tc.lines {
				s.line(l)
			}
			s.finish()
			got, want := s.run, tc.wantRun
			if got.Passed != want.Passed || got.Failed != want.Failed || !slices.Equal(got.Failures, want.Failures) || !slices.Equal(got.Skips, want.Skips) {
				t.Errorf("run = %+v\nwant %+v", got, want)
			}
			for _, w := range tc.wantPrinted {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
			for _, w := range tc.wantSilenced {
				if strings.Contains(out.String(), w) {
					t.Errorf("output has %q, which only a failure should show:\n%s", w, out.String())
				}
			}
		})
	}
}

func TestAllowList(t *testing.T) {
	for _, tc := range []struct {
		name, text, wantErr string
		subject             string
		wantReason          string
	}{
		{name: "match", text: "# comment\n\n802\\.1q -- no vlan in the CI kernel\n", subject: "m/x.TestV: v.go:1: no 802.1q here", wantReason: "no vlan in the CI kernel"},
		{name: "no match", text: "802\\.1q -- no vlan\n", subject: "m/x.TestP: p.go:1: podman not installed"},
		{name: "first entry wins", text: "podman -- a\nnot installed -- b\n", subject: "m/x.T: podman not installed", wantReason: "a"},
		{name: "reason missing", text: "802\\.1q\n", wantErr: "allow:1: want"},
		{name: "empty reason", text: "\n802\\.1q --   \n", wantErr: "allow:2: want"},
		{name: "bad regexp", text: "(802 -- because\n", wantErr: "allow:1: regexp"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := parseAllowList("allow", strings.NewReader(tc.text))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("parseAllowList error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			if e := l.match(tc.subject); e != nil {
				got = e.reason
			}
			if got != tc.wantReason {
				t.Errorf("match(%q) reason = %q, want %q", tc.subject, got, tc.wantReason)
			}
			if n := len(l.unused()); (tc.wantReason == "") != (n == len(l.entries)) {
				t.Errorf("unused entries = %d of %d after matching %q", n, len(l.entries), tc.subject)
			}
		})
	}
}
