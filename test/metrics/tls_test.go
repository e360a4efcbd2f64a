package metrics_test

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/medianet/medianet/internal/coturntest"
	"github.com/medianet/medianet/internal/promtest"
	"golang.org/x/crypto/bcrypt"
)

// TestMetricsOverTLSWithBasicAuth: with --web.config.file (exporter-
// toolkit's format, as node_exporter takes), the node agent serves
// /metrics over TLS to a client with the right basic-auth credentials
// only. A real Prometheus scrapes it with them; the same Prometheus
// without them, or over plain HTTP, is refused.
func TestMetricsOverTLSWithBasicAuth(t *testing.T) {
	promtest.SkipUnlessAvailable(t)
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := coturntest.SelfSigned(cert, key, netip.MustParseAddr("127.0.0.1")); err != nil {
		t.Fatal(err)
	}
	const user, password = "prometheus", "s3cret-scrape"
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	webConfig := filepath.Join(dir, "web.yml")
	if err := os.WriteFile(webConfig, fmt.Appendf(nil, "tls_server_config:\n  cert_file: %s\n  key_file: %s\nbasic_auth_users:\n  %s: %s\n",
		cert, key, user, hash), 0o600); err != nil {
		t.Fatal(err)
	}
	ag := startAgent(t, t.TempDir(), "--cni-conf-dir", t.TempDir(), "--node", "node-a", "--web.config.file", webConfig)

	client := tlsClient(t, cert)
	url := "https://" + ag.addr + "/metrics"
	for _, tc := range []struct {
		name       string
		user, pass string
		want       int
	}{
		{"no credentials", "", "", http.StatusUnauthorized},
		{"wrong password", user, "guess", http.StatusUnauthorized},
		{"right credentials", user, password, http.StatusOK},
	} {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if tc.user != "" {
			req.SetBasicAuth(tc.user, tc.pass)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s: status %d, want %d", tc.name, resp.StatusCode, tc.want)
		}
	}

	prom := promtest.Start(t, promtest.Options{Jobs: []promtest.Job{
		{Name: "tls-auth", Targets: []string{ag.addr}, CAFile: cert, Username: user, Password: password},
		{Name: "tls-noauth", Targets: []string{ag.addr}, CAFile: cert},
		{Name: "plain", Targets: []string{ag.addr}},
	}})
	prom.WaitFor(t, `up{job="tls-auth"}`, 30*time.Second, promtest.Value(1))
	prom.WaitFor(t, `medianet_ipam_store_scrape_success{job="tls-auth"}`, 30*time.Second, promtest.Value(1))
	prom.WaitFor(t, `up{job="tls-noauth"}`, 30*time.Second, promtest.Value(0))
	prom.WaitFor(t, `up{job="plain"}`, 30*time.Second, promtest.Value(0))
	prom.WaitFor(t, `count(medianet_ipam_store_scrape_success{job=~"tls-noauth|plain"}) or vector(0)`, 5*time.Second, promtest.Value(0))
}

// tlsClient trusts the certificate in caFile.
func tlsClient(t *testing.T, caFile string) *http.Client {
	t.Helper()
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("no certificate in %s", caFile)
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}
