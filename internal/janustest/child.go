package janustest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
)

// envCall carries the Call (JSON) to the child process.
const envCall = "MEDIANET_JANUS_CALL"

// MaybeRunClient makes one call and exits when the process is a client
// started by Dial; otherwise it returns. Call it first in TestMain.
func MaybeRunClient() {
	raw := os.Getenv(envCall)
	if raw == "" {
		return
	}
	var c Call
	if err := json.Unmarshal([]byte(raw), &c); err != nil {
		fmt.Fprintf(os.Stderr, "janustest: %s: %v\n", envCall, err)
		os.Exit(2)
	}
	json.NewEncoder(os.Stdout).Encode(run(c))
	os.Exit(0)
}

// Dial makes the call from network namespace ns (a name under
// /run/netns), in a child process, and returns its Result.
func Dial(ns string, c Call) (Result, error) {
	exe, err := os.Executable()
	if err != nil {
		return Result{}, err
	}
	raw, err := json.Marshal(c)
	if err != nil {
		return Result{}, err
	}
	cmd := exec.Command("ip", "netns", "exec", ns, exe)
	cmd.Env = append(os.Environ(), envCall+"="+string(raw))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return Result{}, fmt.Errorf("janustest: client in %s: %w: %s", ns, err, stderr.String())
	}
	var r Result
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		return Result{}, fmt.Errorf("janustest: client in %s: read result %q: %w (stderr: %s)", ns, stdout.String(), err, stderr.String())
	}
	return r, nil
}

// Ready reports whether Janus's HTTP API at url answers from namespace ns.
func Ready(ns, url string) error {
	r, err := Dial(ns, Call{URL: url, Mode: Info})
	if err != nil {
		return err
	}
	if r.Error != "" {
		return fmt.Errorf("janustest: from %s: %s", ns, r.Error)
	}
	return nil
}
