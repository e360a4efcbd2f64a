package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// Environment variables holding TURN credentials (names from the design:
// ../shared/DESIGN.md, "Secrets").
const (
	envPassword = "NATPROBE_TURN_PASSWORD"
	envSecret   = "NATPROBE_TURN_SECRET"
)

// secretSource is one credential (the long-term password, or the REST
// API shared secret) as the command line and the environment give it.
type secretSource struct {
	flagName, fileFlag, env string // "--password", "--password-file", "NATPROBE_TURN_PASSWORD"
	value, file             string // the two flags' values
}

// resolve returns the credential and where it came from, in this order:
// the flag or the file flag (both at once is an error naming them), then
// the environment variable. An empty value means none was given. A file
// loses one trailing newline (echo's and editors'); an empty file, or an
// unreadable one, is an error naming the flag and the file.
func (s secretSource) resolve(getenv func(string) string) (value, from string, err error) {
	switch {
	case s.value != "" && s.file != "":
		return "", "", fmt.Errorf("give %s or %s, not both", s.flagName, s.fileFlag)
	case s.value != "":
		return s.value, s.flagName, nil
	case s.file != "":
		v, err := readSecretFile(s.file)
		if err != nil {
			return "", "", fmt.Errorf("%s: %w", s.fileFlag, err)
		}
		return v, s.fileFlag + " " + s.file, nil
	}
	if v := getenv(s.env); v != "" {
		return v, "env " + s.env, nil
	}
	return "", "", nil
}

// readSecretFile reads a credential file, trimming one trailing line end.
func readSecretFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read %w", err)
	}
	s := strings.TrimSuffix(string(b), "\n")
	s = strings.TrimSuffix(s, "\r")
	if s == "" {
		return "", fmt.Errorf("%s is empty: write the credential into it", path)
	}
	if strings.ContainsAny(s, "\r\n") {
		return "", fmt.Errorf("%s has more than one line: write only the credential into it", path)
	}
	return s, nil
}

// errNoCredentials names every way to give TURN credentials.
var errNoCredentials = errors.New("give --user with --password, --password-file or env " + envPassword +
	" (long-term credentials), or --secret, --secret-file or env " + envSecret + " (TURN REST API)")

// credentials resolves the password and the secret from the flags and
// the environment. A flag wins over the environment; a password and a
// secret together are refused, naming where each came from, as is a
// password without --user.
func (f *turnFlags) credentials(getenv func(string) string) error {
	pw, pwFrom, err := secretSource{"--password", "--password-file", envPassword, f.password, f.passwordFile}.resolve(getenv)
	if err != nil {
		return err
	}
	sec, secFrom, err := secretSource{"--secret", "--secret-file", envSecret, f.secret, f.secretFile}.resolve(getenv)
	if err != nil {
		return err
	}
	switch {
	case pw != "" && sec != "":
		return fmt.Errorf("got a password (%s) and a secret (%s): give one of them, not both (unset the environment variable you do not mean)", pwFrom, secFrom)
	case sec == "" && (pw == "" || f.user == ""):
		if pw != "" {
			return fmt.Errorf("a password (%s) needs --user", pwFrom)
		}
		return errNoCredentials
	}
	f.password, f.passwordFrom, f.secret, f.secretFrom = pw, pwFrom, sec, secFrom
	return nil
}
