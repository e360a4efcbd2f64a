package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/medianet/medianet/natprobe/natprobetest"
)

// designFields are the keys of the probe object of docs/design.md.
var designFields = []string{"server", "local", "mapped", "natPresent", "mapping", "filtering", "hairpinning",
	"portPreserved", "classic", "rfc5780", "durationMs", "unsolicitedInboundRemaps", "verdict", "advice"}

func TestProbeJSON(t *testing.T) {
	addrs := natprobetest.Loopback(t)
	var out, errb bytes.Buffer
	code := run([]string{"probe", "--server", addrs[0].String(), "--timeout", "3s", "--json"}, &out, &errb)
	if code != 0 {
		t.Fatalf("got exit %d, want 0; stderr %s", code, errb.String())
	}
	var m map[string]any
	if err := json.Unmarshal(out.Bytes(), &m); err != nil {
		t.Fatalf("output is not one JSON object: %v\n%s", err, out.String())
	}
	for _, f := range designFields {
		if _, ok := m[f]; !ok {
			t.Errorf("JSON lacks field %q", f)
		}
	}
	if m["verdict"] != "ok" || m["natPresent"] != false {
		t.Errorf("got verdict %v natPresent %v, want ok false", m["verdict"], m["natPresent"])
	}
	dir := t.TempDir()
	a := filepath.Join(dir, "a.json")
	os.WriteFile(a, out.Bytes(), 0o644)
	out.Reset()
	if code := run([]string{"ice", a, a, "--json"}, &out, &errb); code != 0 {
		t.Errorf("ice: got exit %d, want 0; %s", code, out.String())
	}
	if !strings.Contains(out.String(), `"direct": true`) {
		t.Errorf("ice: got %s, want direct true", out.String())
	}
}

func TestProbeHuman(t *testing.T) {
	addrs := natprobetest.Loopback(t)
	var out, errb bytes.Buffer
	if code := run([]string{"probe", "--server", addrs[0].String()}, &out, &errb); code != 0 {
		t.Fatalf("got exit %d, want 0; %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "verdict: ok") {
		t.Errorf("got %q, want a verdict line", out.String())
	}
}

func TestUsageErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"verdict":"maybe"}`), 0o644)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no command", nil, "usage"},
		{"unknown command", []string{"frob"}, "unknown command"},
		{"probe without server", []string{"probe"}, "--server"},
		{"probe bad server", []string{"probe", "--server", "nope"}, "--server"},
		{"probe netns and container", []string{"probe", "--server", "127.0.0.1:1", "--netns", "/x", "--container", "y"}, "not both"},
		{"probe missing netns", []string{"probe", "--server", "127.0.0.1:1", "--netns", "/nonexistent/ns"}, "netns"},
		{"probe bad runtime", []string{"probe", "--server", "127.0.0.1:1", "--container", "x", "--runtime", "lxc"}, "--runtime"},
		{"serve without primary", []string{"serve"}, "--primary"},
		{"serve same ip", []string{"serve", "--primary", "127.0.0.1:3478", "--alternate", "127.0.0.1:3479"}, "alternate"},
		{"ice one file", []string{"ice", bad}, "two probe reports"},
		{"turn without server", []string{"turn", "--user", "u", "--password", "p"}, "--server"},
		{"turn bad uri", []string{"turn", "--server", "stun:127.0.0.1:3478", "--user", "u", "--password", "p"}, "turn:HOST:PORT"},
		{"turn dtls", []string{"turn", "--server", "turns:127.0.0.1:5349?transport=udp", "--secret", "s"}, "DTLS"},
		{"turn no credentials", []string{"turn", "--server", "turn:127.0.0.1:3478"}, "--secret"},
		{"turn password and secret", []string{"turn", "--server", "turn:127.0.0.1:3478", "--user", "u", "--password", "p", "--secret", "s"}, "not both"},
		{"turn netns and container", []string{"turn", "--server", "turn:127.0.0.1:3478", "--secret", "s", "--netns", "/x", "--container", "y"}, "not both"},
		{"turn missing ca", []string{"turn", "--server", "turns:127.0.0.1:1", "--secret", "s", "--ca", "/nonexistent/ca.pem"}, ""},
		{"check without server", []string{"check", "--turn", "turn:127.0.0.1:3478"}, "--server"},
		{"check turn without credentials", []string{"check", "--server", "127.0.0.1:1", "--turn", "turn:127.0.0.1:3478"}, "--turn"},
		{"ice bad report", []string{"ice", bad, bad}, "verdict"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := run(tt.args, &out, &errb); code != 1 {
				t.Errorf("got exit %d, want 1", code)
			}
			if !strings.Contains(errb.String(), tt.want) {
				t.Errorf("got stderr %q, want it to name %q", errb.String(), tt.want)
			}
		})
	}
}
