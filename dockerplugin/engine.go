package dockerplugin

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"time"
)

// engine is the Docker engine medianetd serves. It is asked only from
// medianetd's own goroutines (watch.go), never from inside a call of
// Docker's: dockerd calls the plugin while it allocates (a Swarm leader's
// allocator) or creates a network, and cannot be relied on to answer then.
type engine interface {
	// Networks lists the engine's networks.
	Networks(ctx context.Context) (engineView, error)
	// Endpoints lists the endpoints this host has on network id (their
	// IDs, each with its container's name), and whether the engine has
	// the network at all: a Swarm manager's GET /networks leaves Swarm
	// networks out while the Swarm has no leader, even those the host
	// has; GET /networks/ID finds them.
	Endpoints(ctx context.Context, id string) (eps map[string]string, found bool, err error)
	// Leader reports whether this engine's node leads its Swarm (false
	// outside a Swarm and on a worker); an error when it cannot tell.
	Leader(ctx context.Context) (bool, error)
}

// engineView is the networks an engine listed, and when they were asked
// for: what was created after asked cannot be in it.
type engineView struct {
	ids     map[string]bool
	subnets map[netip.Prefix]bool
	// asked is when the listing was asked for (set by the driver, on its
	// own clock, before the question).
	asked time.Time
}

func (v engineView) has(id string) bool { return v.ids[id] }

// DefaultDockerHost is the engine's socket when Config.DockerHost and env
// DOCKER_HOST are empty; the managed plugin mounts it (settable source
// docker.source).
const DefaultDockerHost = "unix:///var/run/docker.sock"

// engineAPI is the API version asked for: Docker 20.10's, which later
// engines still serve.
const engineAPI = "/v1.41"

// engineTimeout bounds one question to the engine.
const engineTimeout = 3 * time.Second

// dockerEngine asks dockerd's API, on a unix socket or plain TCP.
type dockerEngine struct {
	host   string // as given, for errors
	client *http.Client
}

var _ engine = (*dockerEngine)(nil)

// newDockerEngine returns the engine at host: "unix:///path", "/path" or
// "tcp://HOST:PORT" (plain HTTP, e.g. a read-only proxy on the loopback;
// TLS is refused, see ParseDockerHost).
func newDockerEngine(host string) (*dockerEngine, error) {
	network, addr, err := ParseDockerHost(host)
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
		DisableKeepAlives: true,
	}
	return &dockerEngine{host: host, client: &http.Client{Transport: tr, Timeout: engineTimeout}}, nil
}

// ParseDockerHost splits a DOCKER_HOST value into a dial network and
// address: "unix:///path" or "/path" (a unix socket), "tcp://HOST:PORT"
// (plain TCP). Anything else is refused, saying why: ssh:// and npipe://
// need the docker CLI's helpers, and with DOCKER_TLS_VERIFY or
// DOCKER_CERT_PATH set the docker CLI would speak TLS, which medianetd
// does not: give it a unix socket, or a read-only proxy
// (medianet-engine-proxy) on the loopback.
func ParseDockerHost(host string) (network, addr string, err error) {
	if path, ok := strings.CutPrefix(host, "unix://"); ok || strings.HasPrefix(host, "/") {
		if !ok {
			path = host
		}
		if !strings.HasPrefix(path, "/") {
			return "", "", fmt.Errorf("dockerplugin: DOCKER_HOST %q: %w: give an absolute socket path, e.g. %s", host, ErrBadOption, DefaultDockerHost)
		}
		return "unix", path, nil
	}
	hostport, ok := strings.CutPrefix(host, "tcp://")
	if !ok {
		return "", "", fmt.Errorf("dockerplugin: DOCKER_HOST %q: %w: medianetd reads the engine at unix:///PATH or tcp://HOST:PORT (plain HTTP), not ssh:// or npipe://; e.g. %s", host, ErrBadOption, DefaultDockerHost)
	}
	if v := os.Getenv("DOCKER_TLS_VERIFY"); v != "" || os.Getenv("DOCKER_CERT_PATH") != "" {
		return "", "", fmt.Errorf("dockerplugin: DOCKER_HOST %q with DOCKER_TLS_VERIFY or DOCKER_CERT_PATH set: %w: medianetd does not speak TLS to the engine; give it the unix socket, or run medianet-engine-proxy on the loopback and point DOCKER_HOST at it", host, ErrBadOption)
	}
	hostport = strings.TrimSuffix(hostport, "/")
	if _, port, err := net.SplitHostPort(hostport); err != nil || port == "" {
		return "", "", fmt.Errorf("dockerplugin: DOCKER_HOST %q: %w: give tcp://HOST:PORT, e.g. tcp://127.0.0.1:2375", host, ErrBadOption)
	}
	return "tcp", hostport, nil
}

// get decodes the answer to GET path into v; a 404 is reported as
// found false.
func (e *dockerEngine) get(ctx context.Context, path string, v any) (found bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker"+engineAPI+path, nil)
	if err != nil {
		return false, err
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return false, fmt.Errorf("docker engine at %s: %w: %w", e.host, ErrEngineUnavailable, err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return false, nil
	default:
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return false, fmt.Errorf("docker engine at %s: GET %s: %s: %w: %s", e.host, path, resp.Status, ErrEngineUnavailable, strings.TrimSpace(string(msg)))
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return false, fmt.Errorf("docker engine at %s: decode GET %s: %w: %w", e.host, path, ErrEngineUnavailable, err)
	}
	return true, nil
}

// Networks lists the engine's networks (GET /networks).
func (e *dockerEngine) Networks(ctx context.Context) (engineView, error) {
	var nets []struct {
		ID   string `json:"Id"`
		IPAM struct {
			Config []struct{ Subnet string }
		}
	}
	if _, err := e.get(ctx, "/networks", &nets); err != nil {
		return engineView{}, err
	}
	v := engineView{ids: map[string]bool{}, subnets: map[netip.Prefix]bool{}}
	for _, n := range nets {
		v.ids[n.ID] = true
		for _, c := range n.IPAM.Config {
			if p, err := netip.ParsePrefix(c.Subnet); err == nil {
				v.subnets[p.Masked()] = true
			}
		}
	}
	return v, nil
}

// Endpoints lists the endpoints of network id on this host with their
// containers' names (GET /networks/ID: for a Swarm network the host has,
// the host's instance).
func (e *dockerEngine) Endpoints(ctx context.Context, id string) (map[string]string, bool, error) {
	var n struct {
		Containers map[string]struct{ Name, EndpointID string }
	}
	out := map[string]string{}
	found, err := e.get(ctx, "/networks/"+url.PathEscape(id), &n)
	if err != nil || !found {
		return out, false, err
	}
	for _, c := range n.Containers {
		out[c.EndpointID] = c.Name
	}
	return out, true, nil
}

// Leader asks GET /info whether this node is a Swarm manager and, for a
// manager, GET /nodes/ID whether it leads. A manager whose Swarm has no
// leader cannot tell (an error).
func (e *dockerEngine) Leader(ctx context.Context) (bool, error) {
	var info struct {
		Swarm struct {
			NodeID           string
			LocalNodeState   string
			ControlAvailable bool
		}
	}
	if _, err := e.get(ctx, "/info", &info); err != nil {
		return false, err
	}
	if info.Swarm.LocalNodeState != "active" || !info.Swarm.ControlAvailable {
		return false, nil // no Swarm, or a worker: never the allocator
	}
	var node struct {
		ManagerStatus *struct{ Leader bool }
	}
	found, err := e.get(ctx, "/nodes/"+url.PathEscape(info.Swarm.NodeID), &node)
	switch {
	case err != nil:
		return false, err
	case !found || node.ManagerStatus == nil:
		return false, fmt.Errorf("docker engine at %s: node %s: %w: no manager status", e.host, info.Swarm.NodeID, ErrEngineUnavailable)
	}
	return node.ManagerStatus.Leader, nil
}
