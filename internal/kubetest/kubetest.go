// Package kubetest runs a real kube-apiserver for tests: built from the
// Kubernetes source on the Go module proxy by scripts/kube-apiserver.sh
// (once per machine, cached), backed by a real etcd (internal/etcdtest,
// Debian's etcd 3.4), serving TLS on a loopback port with certificates it
// generates, with RBAC on and a static token file for its two users: an
// administrator (system:masters) and medianet's agent (the ServiceAccount
// kube-system/medianet that deploy/kubernetes/ipam-rbac.yaml binds). It
// installs medianet's CRDs and RBAC from deploy/kubernetes and writes a
// kubeconfig for each user.
//
// The API server can be stopped, killed, started again on the same port
// and data, and paused with SIGSTOP (a hanging server: connections are
// accepted by the kernel and never answered) and resumed. Everything is
// removed through t.Cleanup, also when the test fails.
package kubetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/medianet/medianet/internal/etcdtest"
)

// Token of each user in the server's static token file.
const (
	AdminToken = "kubetest-admin-token"
	AgentToken = "kubetest-agent-token"
	// AgentUser is the agent's user name: the ServiceAccount
	// kube-system/medianet that deploy/kubernetes/ipam-rbac.yaml binds.
	AgentUser = "system:serviceaccount:kube-system:medianet"
)

// Server is a running (or stopped, or paused) kube-apiserver.
type Server struct {
	t    testing.TB
	bin  string
	dir  string
	port int
	etcd *etcdtest.Server
	tls  *etcdtest.TLSFiles

	// URL is the server's https address on 127.0.0.1.
	URL string
	// AdminKubeconfig and AgentKubeconfig are kubeconfig files for the
	// administrator and for medianet's agent (least privilege).
	AdminKubeconfig, AgentKubeconfig string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	log  *bytes.Buffer
}

// Start starts etcd and a kube-apiserver, waits until it is ready, and
// installs medianet's CRDs and RBAC. It skips t only when the
// kube-apiserver binary cannot be built (see Binary) or etcd is absent.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		t.Skipf("kubetest: no kube-apiserver (scripts/kube-apiserver.sh builds it; make test runs it): %v", err)
	}
	etcd := etcdtest.Start(t, etcdtest.Options{})
	dir := t.TempDir()
	files, err := etcdtest.GenerateTLS(filepath.Join(dir, "pki"), "kubetest-client")
	if err != nil {
		t.Fatalf("kubetest: generate certificates: %v", err)
	}
	port, err := freePort()
	if err != nil {
		t.Fatalf("kubetest: pick a port: %v", err)
	}
	s := &Server{t: t, bin: bin, dir: dir, port: port, etcd: etcd, tls: files,
		URL: fmt.Sprintf("https://127.0.0.1:%d", port)}
	if err := s.writeFiles(); err != nil {
		t.Fatalf("kubetest: %v", err)
	}
	t.Cleanup(s.Stop)
	if err := s.Restart(); err != nil {
		t.Fatalf("kubetest: %v", err)
	}
	if err := s.Install(filepath.Join(RepoRoot(), "deploy", "kubernetes", "ipam-crds.yaml"),
		filepath.Join(RepoRoot(), "deploy", "kubernetes", "ipam-rbac.yaml")); err != nil {
		t.Fatalf("kubetest: install medianet's CRDs and RBAC: %v", err)
	}
	return s
}

// Etcd returns the etcd server the API server stores in.
func (s *Server) Etcd() *etcdtest.Server { return s.etcd }

// writeFiles writes the token file, the service-account key pair and the
// kubeconfigs.
func (s *Server) writeFiles() error {
	tokens := fmt.Sprintf("%s,kubetest-admin,kubetest-admin,\"system:masters\"\n%s,%s,kubetest-agent,\"system:serviceaccounts,system:serviceaccounts:kube-system\"\n",
		AdminToken, AgentToken, AgentUser)
	if err := os.WriteFile(filepath.Join(s.dir, "tokens.csv"), []byte(tokens), 0o600); err != nil {
		return err
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(s.dir, "sa.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(s.dir, "sa.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644); err != nil {
		return err
	}
	s.AdminKubeconfig = filepath.Join(s.dir, "admin.kubeconfig")
	s.AgentKubeconfig = filepath.Join(s.dir, "agent.kubeconfig")
	if err := s.WriteKubeconfig(s.AdminKubeconfig, AdminToken); err != nil {
		return err
	}
	return s.WriteKubeconfig(s.AgentKubeconfig, AgentToken)
}

// WriteKubeconfig writes a kubeconfig for the server authenticating with
// token to path.
func (s *Server) WriteKubeconfig(path, token string) error {
	conf := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: kubetest
  cluster:
    server: %s
    certificate-authority: %s
users:
- name: kubetest
  user:
    token: %s
contexts:
- name: kubetest
  context: {cluster: kubetest, user: kubetest}
current-context: kubetest
`, s.URL, s.tls.CAFile, token)
	return os.WriteFile(path, []byte(conf), 0o600)
}

func (s *Server) args() []string {
	return []string{
		"--etcd-servers", s.etcd.Endpoints()[0],
		"--etcd-prefix", "/registry",
		"--bind-address", "127.0.0.1",
		"--advertise-address", "127.0.0.1",
		"--secure-port", fmt.Sprint(s.port),
		"--tls-cert-file", s.tls.ServerCert,
		"--tls-private-key-file", s.tls.ServerKey,
		"--client-ca-file", s.tls.CAFile,
		"--token-auth-file", filepath.Join(s.dir, "tokens.csv"),
		"--authorization-mode", "RBAC",
		"--service-account-key-file", filepath.Join(s.dir, "sa.pub"),
		"--service-account-signing-key-file", filepath.Join(s.dir, "sa.key"),
		"--service-account-issuer", "https://kubernetes.default.svc",
		"--service-cluster-ip-range", "10.96.0.0/24",
		"--endpoint-reconciler-type", "none",
		"--cert-dir", filepath.Join(s.dir, "certs"),
		"--v", "1",
	}
}

// Restart starts the API server when it is not running and waits until it
// is ready (up to 120 s: the machines running the tests are loaded).
func (s *Server) Restart() error {
	s.mu.Lock()
	if s.cmd != nil {
		s.mu.Unlock()
		return nil
	}
	s.log = &bytes.Buffer{}
	cmd := exec.Command(s.bin, s.args()...)
	cmd.Stdout, cmd.Stderr = s.log, s.log
	if err := cmd.Start(); err != nil {
		s.mu.Unlock()
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	if err := s.waitReady(done, 120*time.Second); err != nil {
		s.halt(os.Kill, 0)
		return fmt.Errorf("kube-apiserver at %s did not become ready: %w; log tail:\n%s", s.URL, err, s.logTail())
	}
	return nil
}

func (s *Server) logTail() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.log.Bytes()
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// waitReady polls /readyz until it answers 200.
func (s *Server) waitReady(done <-chan struct{}, limit time.Duration) error {
	cli, err := s.httpClient()
	if err != nil {
		return err
	}
	deadline := time.Now().Add(limit)
	last := fmt.Errorf("no answer yet")
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return fmt.Errorf("kube-apiserver exited")
		default:
		}
		req, _ := http.NewRequest(http.MethodGet, s.URL+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+AdminToken)
		resp, err := cli.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("/readyz: %s", resp.Status)
		}
		last = err
		time.Sleep(200 * time.Millisecond)
	}
	return last
}

func (s *Server) httpClient() (*http.Client, error) {
	pem, err := os.ReadFile(s.tls.CAFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}, nil
}

// Stop stops the API server (SIGTERM, then SIGKILL after 10 s). It
// resumes a paused server first.
func (s *Server) Stop() { s.halt(syscall.SIGTERM, 10*time.Second) }

// Kill kills the API server at once.
func (s *Server) Kill() { s.halt(os.Kill, 0) }

func (s *Server) halt(sig os.Signal, grace time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGCONT)
	_ = s.cmd.Process.Signal(sig)
	select {
	case <-s.done:
	case <-time.After(grace):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
}

// Pause stops the API server's process with SIGSTOP: it keeps its port,
// the kernel accepts connections, and nothing is answered until Resume.
func (s *Server) Pause() error { return s.signal(syscall.SIGSTOP) }

// Resume continues a paused API server.
func (s *Server) Resume() error { return s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return fmt.Errorf("kube-apiserver is not running")
	}
	return s.cmd.Process.Signal(sig)
}

// PID returns the API server's process id, 0 when it is not running.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Ready reports whether the API server answers /readyz now.
func (s *Server) Ready(ctx context.Context) bool {
	cli, err := s.httpClient()
	if err != nil {
		return false
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/readyz", nil)
	req.Header.Set("Authorization", "Bearer "+AdminToken)
	resp, err := cli.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// CAFile is the CA certificate that verifies the server's certificate.
func (s *Server) CAFile() string { return s.tls.CAFile }
