package dhcptest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/medianet/medianet/dhcp/dhcpapi"
)

// Agent is a node agent (medianetd without Docker) keeping the DHCP
// leases of one data directory, as on a node.
type Agent struct {
	Bin, DataDir string
	cmd          *exec.Cmd
	done         chan struct{}
	log          string
}

// StartAgent starts medianetd from binDir for dataDir and stops it
// (SIGTERM) when the test ends.
func StartAgent(t testing.TB, binDir, dataDir string) *Agent {
	t.Helper()
	a := &Agent{Bin: filepath.Join(binDir, "medianetd"), DataDir: dataDir, log: filepath.Join(t.TempDir(), "medianetd.log")}
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Stop(syscall.SIGTERM) })
	return a
}

// Start starts the agent and waits until its DHCP socket answers.
func (a *Agent) Start() error {
	confDir := filepath.Join(a.DataDir, "test-cni-conf")
	if err := os.MkdirAll(confDir, 0o700); err != nil {
		return err
	}
	log, err := os.OpenFile(a.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(a.Bin, "--socket", "", "--cni-conf-dir", confDir, "--data-dir", a.DataDir, "--doctor-interval", "0", "--node", "test")
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("dhcptest: start %s: %w", a.Bin, err)
	}
	a.cmd, a.done = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); log.Close(); close(a.done) }()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-a.done:
			return fmt.Errorf("dhcptest: medianetd exited at start: %s", a.Log())
		default:
		}
		if c, err := net.Dial("unix", dhcpapi.SocketPath(a.DataDir)); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("dhcptest: medianetd's DHCP socket not up after 15s: %s", a.Log())
}

// Stop sends sig (SIGKILL: the agent dies mid-lease) and waits for the end.
func (a *Agent) Stop(sig syscall.Signal) {
	if a.cmd == nil {
		return
	}
	_ = a.cmd.Process.Signal(sig)
	select {
	case <-a.done:
	case <-time.After(10 * time.Second):
		_ = a.cmd.Process.Kill()
		<-a.done
	}
	a.cmd = nil
}

// Log returns the agent's log so far.
func (a *Agent) Log() string {
	b, _ := os.ReadFile(a.log)
	return string(b)
}
