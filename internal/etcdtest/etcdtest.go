// Package etcdtest starts a real etcd server (Debian's etcd-server,
// /usr/bin/etcd, 3.4) for tests: on loopback ports it picks, with a
// temporary data directory, optionally serving TLS with certificates it
// generates (a CA, a server certificate for 127.0.0.1 and a client
// certificate) and optionally with authentication enabled. The server can be
// stopped (or killed) and started again on the same ports and data, so
// tests can cut clients off and bring etcd back. StartCluster starts
// several such servers as the members of one cluster (cluster.go), and
// every server serves etcd's Prometheus metrics (metrics.go).
//
// Everything the server creates is removed through t.Cleanup, also when the
// test fails.
package etcdtest

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Binary is the etcd server the harness runs.
const Binary = "/usr/bin/etcd"

// Options choose how the server is started.
type Options struct {
	// TLS serves clients over https with generated certificates and
	// requires a client certificate signed by the generated CA.
	TLS bool
	// Auth enables etcd authentication and creates User ("medianet") with
	// Password, allowed to read and write under UserPrefix only.
	Auth bool
	// UserPrefix is the key prefix User may use (default "/medianet").
	UserPrefix string
	// ClientCN is the common name of the generated client certificate.
	// With TLS and Auth, set it to the restricted user's name ("medianet")
	// to have etcd authenticate the client by its certificate alone.
	ClientCN string
}

// Server is one running (or stopped) etcd member: a single-member
// cluster from Start, or one member of a StartCluster cluster.
type Server struct {
	t         testing.TB
	dir       string
	name      string
	clientURL string
	peerURL   string
	cluster   string // --initial-cluster: name=peerURL of every member
	token     string // --initial-cluster-token, the same for every member
	opts      Options

	// TLS holds the generated files when Options.TLS is set.
	TLS *TLSFiles
	// User and Password are the credentials of the restricted user when
	// Options.Auth is set (the root user's password is RootPassword).
	User, Password string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	log  *bytes.Buffer

	netns string // when set, the member runs in this network namespace (netns.go)
}

// RootPassword is the password of etcd's root user when auth is enabled.
const RootPassword = "root-secret"

// SkipUnlessAvailable skips t when the etcd server binary is absent.
func SkipUnlessAvailable(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(Binary); err != nil {
		t.Skipf("etcdtest: needs the etcd server at %s (Debian package etcd-server): %v", Binary, err)
	}
}

// Start starts a fresh etcd and waits until it answers. It skips t when
// the binary is absent and fails t when the server does not come up.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	SkipUnlessAvailable(t)
	opts = opts.withDefaults()
	dir := t.TempDir()
	tlsFiles := generateTLS(t, dir, opts)
	s := newServer(t, dir, "etcdtest", opts, tlsFiles)
	s.launchAlone(t)
	return s
}

// launchAlone starts s as a single-member cluster, stopped when the test
// ends, with authentication when its options ask for it.
func (s *Server) launchAlone(t testing.TB) {
	t.Helper()
	s.cluster, s.token = s.name+"="+s.peerURL, "etcdtest-"+s.peerURL
	t.Cleanup(s.Stop)
	if err := s.start(); err != nil {
		t.Fatalf("etcdtest: %v", err)
	}
	if s.opts.Auth {
		if err := s.enableAuth(); err != nil {
			t.Fatalf("etcdtest: enable auth: %v", err)
		}
	}
}

func (o Options) withDefaults() Options {
	if o.UserPrefix == "" {
		o.UserPrefix = "/medianet"
	}
	return o
}

// generateTLS writes the certificates under dir when opts asks for TLS.
func generateTLS(t testing.TB, dir string, opts Options) *TLSFiles {
	t.Helper()
	if !opts.TLS {
		return nil
	}
	files, err := GenerateTLS(filepath.Join(dir, "pki"), opts.ClientCN)
	if err != nil {
		t.Fatalf("etcdtest: generate certificates: %v", err)
	}
	return files
}

// newServer picks loopback ports for a member named name working in
// dir; the caller sets its --initial-cluster.
func newServer(t testing.TB, dir, name string, opts Options, tlsFiles *TLSFiles) *Server {
	t.Helper()
	ports, err := freePorts(2)
	if err != nil {
		t.Fatalf("etcdtest: pick ports: %v", err)
	}
	scheme := "http"
	if tlsFiles != nil {
		scheme = "https"
	}
	return &Server{
		t: t, dir: dir, name: name, opts: opts, TLS: tlsFiles,
		clientURL: fmt.Sprintf("%s://127.0.0.1:%d", scheme, ports[0]),
		peerURL:   fmt.Sprintf("http://127.0.0.1:%d", ports[1]),
	}
}

// Endpoints returns the client URL(s).
func (s *Server) Endpoints() []string { return []string{s.clientURL} }

// Dir returns the server's working directory (data and certificates).
func (s *Server) Dir() string { return s.dir }

func (s *Server) args() []string {
	a := []string{
		"--name", s.name,
		"--data-dir", filepath.Join(s.dir, "data"),
		"--listen-client-urls", s.listenClientURLs(),
		"--advertise-client-urls", s.clientURL,
		"--listen-peer-urls", s.peerURL,
		"--initial-advertise-peer-urls", s.peerURL,
		"--initial-cluster", s.cluster,
		"--initial-cluster-token", s.token,
		"--initial-cluster-state", "new",
		"--logger", "zap",
		"--log-level", "error",
		"--quota-backend-bytes", "104857600",
	}
	if s.TLS != nil {
		a = append(a,
			"--cert-file", s.TLS.ServerCert,
			"--key-file", s.TLS.ServerKey,
			"--trusted-ca-file", s.TLS.CAFile,
			"--client-cert-auth")
	}
	return a
}

func (s *Server) start() error {
	done, err := s.spawn()
	if err != nil || done == nil {
		return err
	}
	return s.awaitHealthy(done)
}

// spawn starts the process; done is nil when it was already running.
func (s *Server) spawn() (chan struct{}, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return nil, nil
	}
	s.log = &bytes.Buffer{}
	cmd := s.command()
	cmd.Stdout = s.log
	cmd.Stderr = s.log
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", Binary, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.cmd, s.done = cmd, done
	return done, nil
}

// awaitHealthy waits for the spawned process to answer, killing it when
// it does not.
func (s *Server) awaitHealthy(done chan struct{}) error {
	if err := s.waitHealthy(done); err != nil {
		s.mu.Lock()
		defer s.mu.Unlock()
		_ = s.cmd.Process.Kill()
		<-done
		s.cmd = nil
		return fmt.Errorf("etcd member %s at %s did not come up: %w; log:\n%s", s.name, s.clientURL, err, s.log.String())
	}
	return nil
}

// waitHealthy polls with a Get until the server answers (up to 20 s).
func (s *Server) waitHealthy(done <-chan struct{}) error {
	deadline := time.Now().Add(20 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return fmt.Errorf("etcd exited")
		default:
		}
		cli, err := s.RootClient()
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_, err = cli.Get(ctx, "etcdtest-health")
			cancel()
			_ = cli.Close()
			if err == nil {
				return nil
			}
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("no answer within 20s: %v", last)
}

// Stop stops the server (SIGTERM, then SIGKILL after 5 s). Data is kept.
func (s *Server) Stop() { s.halt(os.Interrupt, 5*time.Second) }

// Kill kills the server with SIGKILL at once, as a crash or a power cut
// would. Data is kept (as far as etcd had synced it).
func (s *Server) Kill() { s.halt(os.Kill, 0) }

func (s *Server) halt(sig os.Signal, grace time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(sig)
	select {
	case <-s.done:
	case <-time.After(grace):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
}

// PID returns the server's process id, 0 when it is not running.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Name returns the member's name.
func (s *Server) Name() string { return s.name }

// Restart starts a stopped server again on the same ports and data.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	if err := s.start(); err != nil {
		s.t.Fatalf("etcdtest: restart: %v", err)
	}
}

// Running reports whether the server process is up.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd != nil
}

// TLSConfig returns the client TLS configuration (nil without TLS).
func (s *Server) TLSConfig() (*tls.Config, error) {
	if s.TLS == nil {
		return nil, nil
	}
	return s.TLS.ClientConfig()
}

// RootClient returns a client with full rights (root when auth is on).
func (s *Server) RootClient() (*clientv3.Client, error) {
	tc, err := s.TLSConfig()
	if err != nil {
		return nil, err
	}
	cfg := clientv3.Config{
		Endpoints:   s.Endpoints(),
		DialTimeout: 2 * time.Second,
		TLS:         tc,
		Logger:      zap.NewNop(),
	}
	if s.opts.Auth && s.User != "" {
		cfg.Username, cfg.Password = "root", RootPassword
	}
	return clientv3.New(cfg)
}

// enableAuth creates root and a user restricted to UserPrefix, then turns
// authentication on.
func (s *Server) enableAuth() error {
	cli, err := s.RootClient()
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	user, pw, role := "medianet", "medianet-secret", "medianet"
	steps := []func() error{
		func() error { _, err := cli.UserAdd(ctx, "root", RootPassword); return err },
		func() error { _, err := cli.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := cli.RoleAdd(ctx, role); return err },
		func() error {
			_, err := cli.RoleGrantPermission(ctx, role, s.opts.UserPrefix,
				clientv3.GetPrefixRangeEnd(s.opts.UserPrefix), clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		},
		func() error { _, err := cli.UserAdd(ctx, user, pw); return err },
		func() error { _, err := cli.UserGrantRole(ctx, user, role); return err },
		func() error { _, err := cli.AuthEnable(ctx); return err },
	}
	for i, step := range steps {
		if err := step(); err != nil {
			return fmt.Errorf("auth setup step %d: %w", i, err)
		}
	}
	s.User, s.Password = user, pw
	return nil
}

// freePorts returns n distinct loopback TCP ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	var ports []int
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// ClosedEndpoint returns an http URL on a loopback port nothing listens on,
// for cutting a client off.
func ClosedEndpoint(t testing.TB) string {
	t.Helper()
	p, err := freePorts(1)
	if err != nil {
		t.Fatalf("etcdtest: pick port: %v", err)
	}
	return fmt.Sprintf("http://127.0.0.1:%d", p[0])
}
