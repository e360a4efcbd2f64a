package kube

import (
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/medianet/medianet/agent"
	"github.com/medianet/medianet/internal/kubetest"
)

// TestAgentKubeconfig: the kubeconfig the node agent writes from its
// ServiceAccount (medianetd --write-kubeconfig) lets the plugin claim
// blocks from the real API server; after the token rotates (here to one
// the server does not know) it is rewritten and the plugin uses the new
// token at once.
func TestAgentKubeconfig(t *testing.T) {
	srv := kubetest.Start(t)
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	sa := agent.ServiceAccount{Dir: filepath.Join(t.TempDir(), "serviceaccount"), Host: u.Hostname(), Port: u.Port()}
	if err := os.MkdirAll(sa.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ca, err := os.ReadFile(srv.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	rotate := func(token string) {
		t.Helper()
		for name, data := range map[string][]byte{"token": []byte(token), "ca.crt": ca} {
			if err := os.WriteFile(filepath.Join(sa.Dir, name), data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	out := filepath.Join(t.TempDir(), "net.d", "medianet-kubeconfig")
	write := func(token string) {
		t.Helper()
		rotate(token)
		if _, err := agent.WriteKubeconfig(sa, out); err != nil {
			t.Fatal(err)
		}
	}
	conf := func(node string) map[string]any {
		return map[string]any{
			"type": "medianet-ipam", "subnet": "10.97.0.0/24", "blockSize": 28,
			"node": node, "dataDir": filepath.Join(t.TempDir(), node),
			"kubernetes": map[string]any{"kubeconfig": out, "requestTimeout": "30s"},
		}
	}
	write(kubetest.AgentToken)
	if o := run(t, "ADD", "k-c1", conf("k1")); o.Code != 0 || len(o.IPs) != 1 {
		t.Fatalf("ADD with the agent's kubeconfig: code %d %q", o.Code, o.Msg)
	}
	write("a-token-the-server-never-issued")
	o := run(t, "ADD", "k-c2", conf("k2"))
	if o.Code == 0 || !strings.Contains(strings.ToLower(o.Msg), "unauthorized") {
		t.Errorf("ADD after the token was replaced by an unknown one: code %d %q, want a refusal saying Unauthorized", o.Code, o.Msg)
	}
	write(kubetest.AgentToken)
	if o := run(t, "ADD", "k-c3", conf("k3")); o.Code != 0 {
		t.Errorf("ADD after the token came back: code %d %q", o.Code, o.Msg)
	}
}
