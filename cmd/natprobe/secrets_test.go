package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCredentials covers every way to give TURN credentials: flags, files
// and environment variables, their precedence, and the combinations that
// are refused with an error naming the flags.
func TestCredentials(t *testing.T) {
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pwFile := file("pw", "file-pw\n")
	crlfFile := file("crlf", "file-pw\r\n")
	twoNL := file("two-newlines", "file-pw\n\n")
	noNL := file("no-newline", "file-pw")
	spaces := file("spaces", " pw with spaces \n")
	emptyFile := file("empty", "\n")
	secFile := file("sec", "file-secret\n")
	missing := filepath.Join(dir, "missing")
	tests := []struct {
		name            string
		f               turnFlags
		env             map[string]string
		wantPW, wantSec string
		wantFrom        string // passwordFrom or secretFrom
		wantErr         []string
	}{
		{"password flag", turnFlags{user: "u", password: "flag-pw"}, nil, "flag-pw", "", "--password", nil},
		{"password file", turnFlags{user: "u", passwordFile: pwFile}, nil, "file-pw", "", "--password-file " + pwFile, nil},
		{"password file, CRLF", turnFlags{user: "u", passwordFile: crlfFile}, nil, "file-pw", "", "", nil},
		{"password file, no newline", turnFlags{user: "u", passwordFile: noNL}, nil, "file-pw", "", "", nil},
		{"password file keeps spaces", turnFlags{user: "u", passwordFile: spaces}, nil, " pw with spaces ", "", "", nil},
		{"password env", turnFlags{user: "u"}, map[string]string{envPassword: "env-pw"}, "env-pw", "", "env " + envPassword, nil},
		{"password flag beats env", turnFlags{user: "u", password: "flag-pw"}, map[string]string{envPassword: "env-pw"}, "flag-pw", "", "--password", nil},
		{"password file beats env", turnFlags{user: "u", passwordFile: pwFile}, map[string]string{envPassword: "env-pw"}, "file-pw", "", "", nil},
		{"secret flag", turnFlags{secret: "flag-sec"}, nil, "", "flag-sec", "--secret", nil},
		{"secret file", turnFlags{secretFile: secFile}, nil, "", "file-secret", "--secret-file " + secFile, nil},
		{"secret env", turnFlags{}, map[string]string{envSecret: "env-sec"}, "", "env-sec", "env " + envSecret, nil},
		{"secret env with user", turnFlags{user: "probe"}, map[string]string{envSecret: "env-sec"}, "", "env-sec", "", nil},
		{"secret file beats env", turnFlags{secretFile: secFile}, map[string]string{envSecret: "env-sec"}, "", "file-secret", "", nil},
		{"empty env is unset", turnFlags{user: "u", password: "p"}, map[string]string{envSecret: ""}, "p", "", "", nil},

		{"password and password file", turnFlags{user: "u", password: "p", passwordFile: pwFile}, nil, "", "", "", []string{"--password", "--password-file", "not both"}},
		{"secret and secret file", turnFlags{secret: "s", secretFile: secFile}, nil, "", "", "", []string{"--secret", "--secret-file", "not both"}},
		{"password and secret flags", turnFlags{user: "u", password: "p", secret: "s"}, nil, "", "", "", []string{"--password", "--secret", "not both"}},
		{"password file and secret env", turnFlags{user: "u", passwordFile: pwFile}, map[string]string{envSecret: "s"}, "", "", "", []string{"--password-file", envSecret, "not both"}},
		{"both env vars", turnFlags{user: "u"}, map[string]string{envPassword: "p", envSecret: "s"}, "", "", "", []string{envPassword, envSecret, "not both"}},
		{"password without user", turnFlags{passwordFile: pwFile}, nil, "", "", "", []string{"--user", "--password-file"}},
		{"nothing", turnFlags{user: "u"}, nil, "", "", "", []string{"--password-file", envPassword, "--secret-file", envSecret}},
		{"empty file", turnFlags{user: "u", passwordFile: emptyFile}, nil, "", "", "", []string{"--password-file", emptyFile, "empty"}},
		{"two lines", turnFlags{user: "u", passwordFile: twoNL}, nil, "", "", "", []string{"--password-file", "more than one line"}},
		{"missing file", turnFlags{secretFile: missing}, nil, "", "", "", []string{"--secret-file", missing}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := tt.f
			err := f.credentials(func(k string) string { return tt.env[k] })
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("got password %q secret %q, want an error naming %q", f.password, f.secret, tt.wantErr)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q: want it to name %q", err, w)
					}
				}
				if strings.Contains(err.Error(), "file-pw") || strings.Contains(err.Error(), "env-") {
					t.Errorf("error %q shows a credential", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if f.password != tt.wantPW || f.secret != tt.wantSec {
				t.Errorf("got password %q secret %q, want %q %q", f.password, f.secret, tt.wantPW, tt.wantSec)
			}
			from := f.passwordFrom + f.secretFrom
			if tt.wantFrom != "" && from != tt.wantFrom {
				t.Errorf("from: got %q, want %q", from, tt.wantFrom)
			}
		})
	}
}

// TestCredentialsFromEnvironment: the commands read the real environment,
// and refuse an ambiguous one before doing anything.
func TestCredentialsFromEnvironment(t *testing.T) {
	t.Setenv(envPassword, "p")
	t.Setenv(envSecret, "s")
	for _, cmd := range []string{"turn", "check"} {
		args := []string{cmd, "--user", "u", "--server", "turn:127.0.0.1:3478"}
		if cmd == "check" {
			args = []string{cmd, "--user", "u", "--server", "127.0.0.1:1", "--turn", "turn:127.0.0.1:3478"}
		}
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 1 || !strings.Contains(errb.String(), envPassword) || !strings.Contains(errb.String(), envSecret) {
			t.Errorf("%s with both variables set: got exit %d, stderr %q; want 1 naming both", cmd, code, errb.String())
		}
	}
}
