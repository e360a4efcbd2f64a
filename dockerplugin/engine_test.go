package dockerplugin

import (
	"errors"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
)

// serveEngine answers GET /v1.41/networks and /v1.41/networks/ID on a
// unix socket as dockerd does (a Swarm manager: the cluster's network
// "sw1", not instantiated on the host, then the host's "loc1" with one
// endpoint), or with status when it is not 200. GET /v1.41/swarm answers
// as a manager whose control answers when manager is true, else as a
// worker does (503).
func serveEngine(t *testing.T, status int, manager bool) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "docker.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1.41/networks", func(w http.ResponseWriter, _ *http.Request) {
		if status != http.StatusOK {
			http.Error(w, `{"message":"boom"}`, status)
			return
		}
		_, _ = w.Write([]byte(`[{"Name":"media","Id":"sw1","Scope":"swarm","IPAM":{"Driver":"medianet:latest","Config":[{"Subnet":"10.238.0.0/24","Gateway":"10.238.0.254"}]}},
			{"Name":"lan","Id":"loc1","Scope":"local","IPAM":{"Driver":"medianet","Config":[{"Subnet":"fd00:1::/64"}]}},
			{"Name":"none","Id":"n0","Scope":"local","IPAM":{"Driver":"default","Config":[]}}]`))
	})
	mux.HandleFunc("GET /v1.41/swarm", func(w http.ResponseWriter, _ *http.Request) {
		if !manager {
			http.Error(w, `{"message":"This node is not a swarm manager."}`, http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte(`{"ID":"cluster1","Spec":{"Name":"default"}}`))
	})
	mux.HandleFunc("GET /v1.41/networks/{id}", func(w http.ResponseWriter, r *http.Request) {
		switch r.PathValue("id") {
		case "sw1":
			_, _ = w.Write([]byte(`{"Id":"sw1","Containers":null}`))
		case "loc1":
			_, _ = w.Write([]byte(`{"Id":"loc1","Containers":{"c1":{"Name":"janus","EndpointID":"ep1","IPv4Address":"10.0.0.2/24"}}}`))
		default:
			http.Error(w, `{"message":"network not found"}`, http.StatusNotFound)
		}
	})
	srv := &http.Server{Handler: mux}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return sock
}

func TestDockerEngine(t *testing.T) {
	e, err := newDockerEngine("unix://" + serveEngine(t, http.StatusOK, true))
	if err != nil {
		t.Fatal(err)
	}
	v, err := e.Networks(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !v.control || !v.swarm {
		t.Errorf("manager's view: control %t, swarm %t; want both", v.control, v.swarm)
	}
	worker, err := newDockerEngine(serveEngine(t, http.StatusOK, false))
	if err != nil {
		t.Fatal(err)
	}
	if wv, err := worker.Networks(t.Context()); err != nil || wv.control {
		t.Errorf("worker's view: control %t (%v), want false: a view without the Swarm's control may lack its networks", wv.control, err)
	}
	for _, id := range []string{"sw1", "loc1", "n0"} {
		if !v.has(id) {
			t.Errorf("network %s not in the view", id)
		}
	}
	for _, s := range []string{"10.238.0.0/24", "fd00:1::/64"} {
		if !v.subnets[netip.MustParsePrefix(s)] {
			t.Errorf("subnet %s not in the view", s)
		}
	}
	for id, want := range map[string][]string{"sw1": nil, "loc1": {"ep1"}, "gone": nil} {
		eps, err := e.Endpoints(t.Context(), id)
		if err != nil || len(eps) != len(want) || (len(want) > 0 && !eps[want[0]]) {
			t.Errorf("Endpoints(%s) = %v, %v; want %v", id, eps, err, want)
		}
	}
}

func TestDockerEngineErrors(t *testing.T) {
	if _, err := newDockerEngine("tcp://127.0.0.1:2375"); err == nil || !strings.Contains(err.Error(), "unix socket") {
		t.Errorf("tcp host: err = %v, want one asking for a unix socket", err)
	}
	for name, sock := range map[string]string{
		"status 500":     serveEngine(t, http.StatusInternalServerError, true),
		"missing socket": filepath.Join(t.TempDir(), "none.sock"),
	} {
		e, err := newDockerEngine(sock)
		if err != nil {
			t.Fatal(err)
		}
		_, err = e.Networks(t.Context())
		if !errors.Is(err, ErrEngineUnavailable) || !strings.Contains(err.Error(), sock) {
			t.Errorf("%s: err = %v, want ErrEngineUnavailable naming %s", name, err, sock)
		}
	}
}
