package dockerplugin

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
)

// engineRole is what serveEngine's node is in its Swarm.
type engineRole int

const (
	roleLeader engineRole = iota
	roleFollower
	roleNoLeader // a manager whose Swarm has no leader
	roleWorker
	roleNoSwarm
)

// serveEngine answers on a unix socket as dockerd does: GET
// /v1.41/networks (a Swarm manager: the cluster's network "sw1", not
// instantiated on the host, then the host's "loc1" with one endpoint),
// /v1.41/networks/ID, /v1.41/info and /v1.41/nodes/ID for a node of role;
// every answer is status when that is not 200.
func serveEngine(t *testing.T, status int, role engineRole) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "docker.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	fail := func(w http.ResponseWriter) bool {
		if status != http.StatusOK {
			http.Error(w, `{"message":"boom"}`, status)
		}
		return status != http.StatusOK
	}
	mux.HandleFunc("GET /v1.41/networks", func(w http.ResponseWriter, _ *http.Request) {
		if fail(w) {
			return
		}
		_, _ = w.Write([]byte(`[{"Name":"media","Id":"sw1","Scope":"swarm","IPAM":{"Driver":"medianet:latest","Config":[{"Subnet":"10.238.0.0/24","Gateway":"10.238.0.254"}]}},
			{"Name":"lan","Id":"loc1","Scope":"local","IPAM":{"Driver":"medianet","Config":[{"Subnet":"fd00:1::/64"}]}},
			{"Name":"none","Id":"n0","Scope":"local","IPAM":{"Driver":"default","Config":[]}}]`))
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
	mux.HandleFunc("GET /v1.41/info", func(w http.ResponseWriter, _ *http.Request) {
		if fail(w) {
			return
		}
		switch role {
		case roleNoSwarm:
			_, _ = w.Write([]byte(`{"Swarm":{"NodeID":"","LocalNodeState":"inactive","ControlAvailable":false}}`))
		case roleWorker:
			_, _ = w.Write([]byte(`{"Swarm":{"NodeID":"node1","LocalNodeState":"active","ControlAvailable":false}}`))
		default:
			_, _ = w.Write([]byte(`{"Swarm":{"NodeID":"node1","LocalNodeState":"active","ControlAvailable":true}}`))
		}
	})
	mux.HandleFunc("GET /v1.41/nodes/node1", func(w http.ResponseWriter, _ *http.Request) {
		switch role {
		case roleNoLeader:
			http.Error(w, `{"message":"rpc error: code = Unknown desc = The swarm does not have a leader."}`, http.StatusServiceUnavailable)
		case roleWorker:
			http.Error(w, `{"message":"This node is not a swarm manager."}`, http.StatusServiceUnavailable)
		default:
			_, _ = w.Write([]byte(`{"ID":"node1","ManagerStatus":{"Leader":` + map[bool]string{true: "true", false: "false"}[role == roleLeader] + `,"Reachability":"reachable"}}`))
		}
	})
	srv := &http.Server{Handler: mux}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return sock
}

func TestDockerEngine(t *testing.T) {
	e, err := newDockerEngine("unix://" + serveEngine(t, http.StatusOK, roleLeader))
	if err != nil {
		t.Fatal(err)
	}
	v, err := e.Networks(t.Context())
	if err != nil {
		t.Fatal(err)
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
	for id, want := range map[string][]string{"sw1": nil, "loc1": {"ep1", "janus"}, "gone": nil} {
		eps, found, err := e.Endpoints(t.Context(), id)
		if err != nil || found != (id != "gone") || len(eps) != len(want)/2 || (len(want) > 0 && eps[want[0]] != want[1]) {
			t.Errorf("Endpoints(%s) = %v, %t, %v; want %v, found %t", id, eps, found, err, want, id != "gone")
		}
	}
}

// TestDockerEngineLeader: GET /info and /nodes/ID tell the leader from a
// follower, a worker and a host outside a Swarm; a manager without a
// leader cannot tell.
func TestDockerEngineLeader(t *testing.T) {
	for _, tc := range []struct {
		name    string
		role    engineRole
		leader  bool
		wantErr bool
	}{
		{"leader", roleLeader, true, false},
		{"follower", roleFollower, false, false},
		{"worker", roleWorker, false, false},
		{"no swarm", roleNoSwarm, false, false},
		{"no leader", roleNoLeader, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := newDockerEngine(serveEngine(t, http.StatusOK, tc.role))
			if err != nil {
				t.Fatal(err)
			}
			got, err := e.Leader(t.Context())
			if (err != nil) != tc.wantErr || got != tc.leader {
				t.Errorf("Leader() = %t, %v; want %t, error %t", got, err, tc.leader, tc.wantErr)
			}
			if err != nil && !errors.Is(err, ErrEngineUnavailable) {
				t.Errorf("err = %v, want ErrEngineUnavailable", err)
			}
		})
	}
}

func TestDockerEngineErrors(t *testing.T) {
	for name, sock := range map[string]string{
		"status 500":     serveEngine(t, http.StatusInternalServerError, roleLeader),
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
		if _, err := e.Leader(t.Context()); !errors.Is(err, ErrEngineUnavailable) {
			t.Errorf("%s: Leader err = %v, want ErrEngineUnavailable", name, err)
		}
	}
}

// TestParseDockerHost: DOCKER_HOST as the docker CLI reads it, and the
// values medianetd refuses, saying why.
func TestParseDockerHost(t *testing.T) {
	for _, tc := range []struct {
		host, tls     string
		network, addr string
		wantErr       string
	}{
		{host: "unix:///var/run/docker.sock", network: "unix", addr: "/var/run/docker.sock"},
		{host: "/run/docker.sock", network: "unix", addr: "/run/docker.sock"},
		{host: "tcp://127.0.0.1:2375", network: "tcp", addr: "127.0.0.1:2375"},
		{host: "tcp://[::1]:2375/", network: "tcp", addr: "[::1]:2375"},
		{host: "unix://run/docker.sock", wantErr: "absolute socket path"},
		{host: "tcp://127.0.0.1", wantErr: "tcp://HOST:PORT"},
		{host: "ssh://me@host", wantErr: "not ssh://"},
		{host: "npipe:////./pipe/docker_engine", wantErr: "not ssh:// or npipe://"},
		{host: "tcp://10.0.0.1:2376", tls: "1", wantErr: "does not speak TLS"},
	} {
		t.Setenv("DOCKER_TLS_VERIFY", tc.tls)
		t.Setenv("DOCKER_CERT_PATH", "")
		network, addr, err := ParseDockerHost(tc.host)
		switch {
		case tc.wantErr != "":
			if err == nil || !errors.Is(err, ErrBadOption) || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "DOCKER_HOST") {
				t.Errorf("ParseDockerHost(%q) err = %v, want ErrBadOption naming DOCKER_HOST and %q", tc.host, err, tc.wantErr)
			}
		case err != nil || network != tc.network || addr != tc.addr:
			t.Errorf("ParseDockerHost(%q) = %q, %q, %v; want %q, %q", tc.host, network, addr, err, tc.network, tc.addr)
		}
	}
}

// TestDockerEngineTCP: tcp:// reaches an engine (here, the one of
// serveEngine behind a loopback listener).
func TestDockerEngineTCP(t *testing.T) {
	sock := serveEngine(t, http.StatusOK, roleFollower)
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
	e, err := newDockerEngine("tcp://" + l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if v, err := e.Networks(t.Context()); err != nil || !v.has("sw1") {
		t.Errorf("Networks over tcp = %v, %v; want sw1 listed", v.ids, err)
	}
}
