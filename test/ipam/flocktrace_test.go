package ipam_test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// flockTracer measures from outside how long plugin processes wait for
// their store lock: each process runs under strace, which stops it only
// on flock calls (seccomp filter) and logs them with the file's path,
// a timestamp and the call's duration.
type flockTracer struct {
	dir    string
	strace string
	mu     sync.Mutex // guards writing the scripts
}

func newFlockTracer(dir string) (*flockTracer, error) {
	s, err := exec.LookPath("strace")
	if err != nil {
		return nil, fmt.Errorf("needs strace (Debian package strace): %w", err)
	}
	return &flockTracer{dir: dir, strace: s}, nil
}

// wrap returns a script that execs plug under strace, logging to a file
// per process in the tracer's directory.
func (f *flockTracer) wrap(plug string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	script := filepath.Join(f.dir, "traced-"+filepath.Base(plug))
	if _, err := os.Stat(script); err == nil {
		return script, nil
	}
	body := fmt.Sprintf("#!/bin/sh\nexec %s -f --seccomp-bpf -e trace=flock -y -ttt -T -o %s/flock.$$ %s\n",
		f.strace, f.dir, plug)
	// Written whole under another name first: a script being written
	// cannot be executed ("text file busy").
	if err := os.WriteFile(script+".new", []byte(body), 0o755); err != nil {
		return "", err
	}
	return script, os.Rename(script+".new", script)
}

// waits returns, for every traced process, the total time it waited to
// lock a file whose name is lock, and removes the logs.
func (f *flockTracer) waits(lock string) ([]time.Duration, error) {
	logs, err := filepath.Glob(filepath.Join(f.dir, "flock.*"))
	if err != nil || len(logs) == 0 {
		return nil, fmt.Errorf("no strace logs in %s: %v", f.dir, err)
	}
	var out []time.Duration
	for _, l := range logs {
		w, err := lockWait(l, "/"+lock+">")
		if err != nil {
			return nil, err
		}
		out = append(out, w)
		os.Remove(l)
	}
	return out, nil
}

// lockWait adds up one process's waits in an strace log: a blocking
// flock's duration, or the time from a non-blocking flock's first
// EWOULDBLOCK to its success.
func lockWait(path, lockSuffix string) (time.Duration, error) {
	fh, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer fh.Close()
	var total time.Duration
	firstTry := map[string]float64{} // tid: first failed non-blocking try
	unfinished := map[string]bool{}  // tid: a blocking flock on the lock in progress
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 {
			continue
		}
		tid, line := f[0], sc.Text()
		ts, _ := strconv.ParseFloat(f[1], 64)
		switch {
		case strings.Contains(line, "flock resumed>"):
			if unfinished[tid] {
				total += callTime(line)
				delete(unfinished, tid)
			}
		case !strings.Contains(line, lockSuffix) || strings.Contains(line, "LOCK_UN"):
		case strings.Contains(line, "<unfinished"):
			unfinished[tid] = !strings.Contains(line, "LOCK_NB")
		case strings.Contains(line, ") = 0"):
			if t0, ok := firstTry[tid]; ok {
				total += time.Duration((ts - t0) * float64(time.Second))
				delete(firstTry, tid)
			} else if !strings.Contains(line, "LOCK_NB") {
				total += callTime(line)
			}
		default: // EWOULDBLOCK or EINTR: try again later
			if _, ok := firstTry[tid]; !ok {
				firstTry[tid] = ts
			}
		}
	}
	return total, sc.Err()
}

// callTime reads strace's -T suffix "<0.000123>".
func callTime(line string) time.Duration {
	i := strings.LastIndexByte(line, '<')
	v, err := strconv.ParseFloat(strings.TrimSuffix(line[i+1:], ">"), 64)
	if i < 0 || err != nil {
		return 0
	}
	return time.Duration(v * float64(time.Second))
}

func TestLockWait(t *testing.T) {
	tests := []struct {
		name, log string
		want      time.Duration
	}{
		{"non-blocking retries", `
10 100.000000 flock(5</d/ipam.lock>, LOCK_EX|LOCK_NB) = -1 EAGAIN (Resource temporarily unavailable) <0.000010>
10 100.002000 flock(5</d/ipam.lock>, LOCK_EX|LOCK_NB) = -1 EAGAIN (Resource temporarily unavailable) <0.000010>
10 100.005000 flock(5</d/ipam.lock>, LOCK_EX|LOCK_NB) = 0 <0.000010>
10 100.006000 flock(6</d/ipam.db>, LOCK_EX|LOCK_NB) = 0 <0.000010>
10 100.009000 flock(5</d/ipam.lock>, LOCK_UN) = 0 <0.000010>
10 100.010000 flock(5</d/ipam.lock>, LOCK_SH|LOCK_NB) = 0 <0.000010>
`, 5 * time.Millisecond},
		{"blocking, other file ignored", `
20 100.000000 flock(3</d/net/lock>, LOCK_EX) = 0 <0.012000>
20 100.013000 flock(4</d/net/other>, LOCK_EX) = 0 <0.500000>
`, 12 * time.Millisecond},
		{"blocking, interrupted by another thread", `
30 100.000000 flock(3</d/net/lock>, LOCK_EX <unfinished ...>
31 100.001000 flock(4</d/net/other>, LOCK_SH) = 0 <0.000010>
30 100.020000 <... flock resumed>) = 0 <0.020000>
`, 20 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "log")
			if err := os.WriteFile(p, []byte(strings.TrimPrefix(tt.log, "\n")), 0o600); err != nil {
				t.Fatal(err)
			}
			lock := "/ipam.lock>"
			if !strings.Contains(tt.log, "ipam.lock") {
				lock = "/lock>"
			}
			got, err := lockWait(p, lock)
			if err != nil {
				t.Fatal(err)
			}
			if d := got - tt.want; d < -time.Microsecond || d > time.Microsecond {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}
