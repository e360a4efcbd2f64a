package dockertest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// EngineProxy is a medianet-engine-proxy run for a test.
type EngineProxy struct {
	// Socket is where it serves, as the test process and every host's
	// mount namespace see it.
	Socket string
	cmd    *exec.Cmd
	log    string
}

// StartEngineProxy runs the medianet-engine-proxy binary bin in front of
// the engine at dockerHost, serving on a socket in dir. It is stopped
// with SIGTERM when t ends, and its log is shown when t failed.
func StartEngineProxy(t testing.TB, bin, dir, dockerHost string) *EngineProxy {
	t.Helper()
	p := &EngineProxy{Socket: filepath.Join(dir, "engine-proxy.sock"), log: filepath.Join(dir, "engine-proxy.log")}
	log, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	p.cmd = exec.Command(bin, "--listen", "unix://"+p.Socket, "--engine", dockerHost)
	p.cmd.Stdout, p.cmd.Stderr = log, log
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("dockertest: start %s: %v", bin, err)
	}
	exited := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("medianet-engine-proxy log:\n%s", p.Log())
		}
	})
	err = WaitFor(10*time.Second, func() error {
		select {
		case <-exited:
			return fmt.Errorf("medianet-engine-proxy exited: %s", p.Log())
		default:
		}
		if _, err := os.Stat(p.Socket); err != nil {
			return fmt.Errorf("%w: %w", err, ErrNotYet)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("dockertest: %v", err)
	}
	return p
}

// Log is what the proxy logged so far.
func (p *EngineProxy) Log() string {
	raw, err := os.ReadFile(p.log)
	if err != nil {
		return err.Error()
	}
	return strings.TrimSpace(string(raw))
}

// StartEngineProxy runs a medianet-engine-proxy in front of h's dockerd
// (see the function of that name).
func (h *Host) StartEngineProxy(t testing.TB, bin string) *EngineProxy {
	t.Helper()
	return StartEngineProxy(t, bin, h.Dir, "unix://"+h.Socket)
}
