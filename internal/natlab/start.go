package natlab

import (
	"bytes"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for the exec copier and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Process is a command started by Start.
type Process struct {
	Cmd    *exec.Cmd
	stderr *syncBuffer
	done   chan struct{}
}

// Stderr returns what the process wrote to stderr so far.
func (p *Process) Stderr() string { return p.stderr.String() }

// Stop kills the process and waits for it; Start's cleanup does it too.
func (p *Process) Stop() {
	p.Cmd.Process.Kill()
	<-p.done
}

// Start runs a long-running command inside namespace ns, killed when t
// ends, and waits until ns listens on every address in ready (UDP or TCP,
// as ss prints them: "IP:PORT" or "[IP6]:PORT").
func Start(t testing.TB, ns string, ready []string, args ...string) *Process {
	t.Helper()
	p := &Process{Cmd: Cmd(ns, args...), stderr: &syncBuffer{}, done: make(chan struct{})}
	p.Cmd.Stderr = p.stderr
	if err := p.Cmd.Start(); err != nil {
		t.Fatalf("natlab: start %v in %s: %v", args, ns, err)
	}
	go func() { p.Cmd.Wait(); close(p.done) }()
	t.Cleanup(p.Stop)
	if err := waitListening(ns, ready, p.done); err != nil {
		t.Fatalf("natlab: %v in %s: %v; stderr: %s", args, ns, err, p.Stderr())
	}
	return p
}

// waitListening polls ss in ns until every address in ready has a
// listening socket, the process ends, or 10 s pass.
func waitListening(ns string, ready []string, done <-chan struct{}) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, _ := In(ns, "ss", "-Hlntu")
		missing := ""
		for _, a := range ready {
			if !strings.Contains(out, a+" ") {
				missing = a
			}
		}
		if missing == "" {
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("exited before listening on %s", missing)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no socket on %s after 10s", missing)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
