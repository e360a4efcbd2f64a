package docker

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/medianet/medianet/internal/dockertest"
	"github.com/medianet/medianet/internal/nstest"
)

// TestEngineProxy: medianet-engine-proxy in front of the machine's
// dockerd lets the reads medianetd makes through (and the docker CLI's
// network listing), and refuses every write without dockerd seeing it.
// medianetd reads the engine through it, on a unix socket or on
// DOCKER_HOST=tcp://, and refuses at start a DOCKER_HOST it cannot use,
// saying why.
func TestEngineProxy(t *testing.T) {
	nstest.SkipUnlessRoot(t)
	dockertest.Require(t)
	dir := t.TempDir()
	p := dockertest.StartEngineProxy(t, filepath.Join(binDir, "medianet-engine-proxy"), dir, "unix:///var/run/docker.sock")
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", p.Socket)
	}}}
	name := uniqueName("mnProxy")
	for _, tc := range []struct {
		method, path, body string
		status             int
	}{
		{"GET", "/v1.41/networks", "", http.StatusOK},
		{"GET", "/v1.41/networks/bridge", "", http.StatusOK},
		{"GET", "/v1.41/info", "", http.StatusOK},
		{"POST", "/v1.41/networks/create", `{"Name":"` + name + `"}`, http.StatusForbidden},
		{"POST", "/v1.41/containers/create", `{"Image":"` + dockertest.Image + `"}`, http.StatusForbidden},
		{"DELETE", "/v1.41/networks/bridge", "", http.StatusForbidden},
		{"GET", "/v1.41/containers/json", "", http.StatusForbidden},
	} {
		req, err := http.NewRequest(tc.method, "http://docker"+tc.path, strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", tc.method, tc.path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%s %s through the proxy: status %d, want %d", tc.method, tc.path, resp.StatusCode, tc.status)
		}
	}
	if out, err := dockertest.Docker("network", "inspect", name); err == nil {
		t.Errorf("network %s created through the proxy: %s", name, out)
	}
	cli := func(args ...string) (string, error) {
		out, err := exec.Command("docker", append([]string{"-H", "unix://" + p.Socket}, args...)...).CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	if out, err := cli("network", "ls", "--format", "{{.Name}}"); err != nil || !strings.Contains(out, "bridge") {
		t.Errorf("docker network ls through the proxy: %q, %v; want bridge listed", out, err)
	}
	if out, err := cli("network", "create", name); err == nil || !strings.Contains(out, "refused") {
		t.Errorf("docker network create through the proxy: %q, %v; want the proxy's refusal", out, err)
	}
	if log := p.Log(); strings.Count(log, "refused") < 5 {
		t.Errorf("proxy log: %q, want every refusal logged", log)
	}

	// medianetd through the proxy, on its unix socket and on tcp://.
	tcp := tcpForward(t, p.Socket)
	for _, host := range []string{"unix://" + p.Socket, "tcp://" + tcp} {
		before := strings.Count(p.Log(), "refused")
		out, alive := runMedianetd(t, host)
		if !alive {
			t.Errorf("medianetd with DOCKER_HOST=%s exited: %s", host, out)
		}
		if !strings.Contains(out, "reconcile: engine asked") || strings.Count(p.Log(), "refused") != before {
			t.Errorf("medianetd with DOCKER_HOST=%s could not read the engine through the proxy:\n%s\nproxy: %s", host, out, p.Log())
		}
	}
	for _, tc := range []struct{ host, tls, want string }{
		{"tcp://" + tcp, "1", "does not speak TLS"},
		{"ssh://root@localhost", "", "not ssh://"},
	} {
		t.Setenv("DOCKER_TLS_VERIFY", tc.tls)
		if out, alive := runMedianetd(t, tc.host); alive || !strings.Contains(out, tc.want) || !strings.Contains(out, "DOCKER_HOST") {
			t.Errorf("medianetd with DOCKER_HOST=%s DOCKER_TLS_VERIFY=%q: running %t, output %q; want a refusal at start saying %q", tc.host, tc.tls, alive, out, tc.want)
		}
	}
}

// runMedianetd runs medianetd (on a socket Docker does not look at) with
// DOCKER_HOST=host and --debug for its first reconcile, and returns its
// output and whether it was still running then.
func runMedianetd(t *testing.T, host string) (string, bool) {
	t.Helper()
	dir := t.TempDir()
	logPath := filepath.Join(dir, "medianetd.log")
	log, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	cmd := exec.Command(filepath.Join(binDir, "medianetd"), "--socket", filepath.Join(dir, "m.sock"), "--data-dir", dir, "--debug")
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+host)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	alive := true
	_ = dockertest.WaitFor(10*time.Second, func() error {
		select {
		case <-exited:
			alive = false
			return nil
		default:
		}
		if _, err := os.Stat(filepath.Join(dir, "m.sock")); err != nil {
			return err
		}
		return nil
	})
	if alive {
		// Its first reconcile runs at start: wait for its outcome.
		_ = dockertest.WaitFor(5*time.Second, func() error {
			raw, _ := os.ReadFile(logPath)
			if !strings.Contains(string(raw), "reconcile:") {
				return dockertest.ErrNotYet
			}
			return nil
		})
		_ = cmd.Process.Signal(syscall.SIGTERM)
		<-exited
	}
	raw, _ := os.ReadFile(logPath)
	return string(raw), alive
}

// tcpForward listens on a loopback TCP port and forwards every connection
// to the unix socket sock; it returns HOST:PORT.
func tcpForward(t *testing.T, sock string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				u, err := net.Dial("unix", sock)
				if err != nil {
					return
				}
				defer u.Close()
				go func() { _, _ = io.Copy(u, c) }()
				_, _ = io.Copy(c, u)
			}()
		}
	}()
	return l.Addr().String()
}
