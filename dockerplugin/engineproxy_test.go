package dockerplugin

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestEngineProxy: the proxy passes the GETs medianetd makes, to an
// engine on a unix socket, and refuses every other method and path
// without reaching the engine.
func TestEngineProxy(t *testing.T) {
	sock := serveEngine(t, http.StatusOK, roleFollower)
	h, err := EngineProxy("unix://"+sock, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{"GET", "/v1.41/networks", http.StatusOK},
		{"GET", "/v1.41/networks/loc1", http.StatusOK},
		{"GET", "/v1.41/networks/gone", http.StatusNotFound}, // the engine's answer
		{"GET", "/v1.41/info", http.StatusOK},
		{"GET", "/_ping", http.StatusNotFound}, // passed: the fake serves no /_ping
		{"HEAD", "/v1.41/version", http.StatusNotFound},
		{"GET", "/v1.41/nodes/node1", http.StatusOK},
		{"POST", "/v1.41/networks/create", http.StatusForbidden},
		{"DELETE", "/v1.41/networks/loc1", http.StatusForbidden},
		{"POST", "/v1.41/containers/create", http.StatusForbidden},
		{"GET", "/v1.41/containers/json", http.StatusForbidden},
		{"GET", "/v1.41/secrets", http.StatusForbidden},
		{"GET", "/v1.41/networks/loc1/../../containers/json", http.StatusForbidden},
		{"POST", "/v1.41/containers/x/exec", http.StatusForbidden},
		{"PUT", "/v1.41/info", http.StatusForbidden},
		{"GET", "/v1.41/nodes/node1/extra", http.StatusForbidden},
		{"GET", "/v1.41/networks/..", http.StatusForbidden},
		{"GET", "/networks", http.StatusNotFound}, // passed: the fake serves only /v1.41
	} {
		req, err := http.NewRequest(tc.method, srv.URL+tc.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultTransport.RoundTrip(req) // no client-side path cleaning or redirects
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%s %s: status %d, want %d", tc.method, tc.path, resp.StatusCode, tc.status)
		}
	}
	req, _ := http.NewRequest("GET", srv.URL+"/v1.41/info", strings.NewReader("x"))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("GET with a body: %v, %v; want 403", resp, err)
	}
	if _, err := EngineProxy("ssh://host", nil); err == nil {
		t.Errorf("EngineProxy(ssh://host): no error")
	}
}
