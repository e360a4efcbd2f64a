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
	"strings"
	"time"
)

// engine is the Docker engine medianetd serves, asked which networks
// exist so that state Docker never released (a former Swarm leader's
// pools, a killed dockerd's networks) is found and dropped
// (reconcile.go). It is asked without the driver's lock held.
type engine interface {
	Networks(ctx context.Context) (engineView, error)
	// Endpoints lists the IDs of the endpoints this host has on network
	// id (none when the host does not have the network).
	Endpoints(ctx context.Context, id string) (map[string]bool, error)
}

// engineView is the networks an engine lists at one moment: on a Swarm
// manager the cluster's networks as well as the host's own.
type engineView struct {
	ids     map[string]bool
	subnets map[netip.Prefix]bool
	// swarm: a network of the Swarm (scope swarm) is listed. A manager
	// lists the cluster's networks only while its Swarm control answers.
	swarm bool
	// control: the Swarm's control answered (GET /swarm) just before and
	// just after the listing, so the listing holds every network of the
	// cluster (dockerd drops the cluster's part of GET /networks silently
	// when its control fails). A Swarm network being allocated is listed,
	// but without its subnet: dockerd shows a Swarm network's allocated
	// IPAM, not its spec.
	control bool
}

func (v engineView) has(id string) bool { return v.ids[id] }

// DefaultDockerHost is the engine's socket when Config.DockerHost and env
// DOCKER_HOST are empty; the managed plugin mounts it (settable source
// docker.source).
const DefaultDockerHost = "unix:///var/run/docker.sock"

// engineAPI is the API version asked for: Docker 20.10's, which later
// engines still serve.
const engineAPI = "/v1.41"

// engineTimeout bounds one question to the engine. dockerd may be busy
// (starting, or waiting for this very plugin), and the driver answers
// Docker without the engine's view rather than wait.
const engineTimeout = 3 * time.Second

// dockerEngine asks dockerd's API on its unix socket.
type dockerEngine struct {
	socket string
	client *http.Client
}

var _ engine = (*dockerEngine)(nil)

// newDockerEngine returns the engine at host, "unix:///path" or "/path".
func newDockerEngine(host string) (*dockerEngine, error) {
	path, ok := strings.CutPrefix(host, "unix://")
	if !ok {
		path = host
	}
	if !strings.HasPrefix(path, "/") {
		return nil, fmt.Errorf("dockerplugin: docker host %q: %w: give the engine's unix socket, e.g. %s", host, ErrBadOption, DefaultDockerHost)
	}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
		DisableKeepAlives: true,
	}
	return &dockerEngine{socket: path, client: &http.Client{Transport: tr, Timeout: engineTimeout}}, nil
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
		return false, fmt.Errorf("docker engine at %s: %w: %w", e.socket, ErrEngineUnavailable, err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return false, nil
	default:
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return false, fmt.Errorf("docker engine at %s: GET %s: %s: %w: %s", e.socket, path, resp.Status, ErrEngineUnavailable, strings.TrimSpace(string(msg)))
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return false, fmt.Errorf("docker engine at %s: decode GET %s: %w: %w", e.socket, path, ErrEngineUnavailable, err)
	}
	return true, nil
}

// Networks lists the engine's networks (GET /networks), between two
// questions to the Swarm's control (GET /swarm).
func (e *dockerEngine) Networks(ctx context.Context) (engineView, error) {
	before := e.swarmControl(ctx)
	var nets []struct {
		ID    string `json:"Id"`
		Scope string
		IPAM  struct {
			Config []struct{ Subnet string }
		}
	}
	if _, err := e.get(ctx, "/networks", &nets); err != nil {
		return engineView{}, err
	}
	v := engineView{ids: map[string]bool{}, subnets: map[netip.Prefix]bool{}}
	v.control = before && e.swarmControl(ctx)
	for _, n := range nets {
		v.ids[n.ID] = true
		v.swarm = v.swarm || n.Scope == "swarm"
		for _, c := range n.IPAM.Config {
			if p, err := netip.ParsePrefix(c.Subnet); err == nil {
				v.subnets[p.Masked()] = true
			}
		}
	}
	return v, nil
}

// swarmControl reports whether the engine is a Swarm manager whose
// control answers: GET /swarm reads the cluster through it, and fails on
// a worker, outside a Swarm, and on a manager that has no leader.
func (e *dockerEngine) swarmControl(ctx context.Context) bool {
	var sw struct{ ID string }
	found, err := e.get(ctx, "/swarm", &sw)
	return err == nil && found && sw.ID != ""
}

// Endpoints lists the endpoints of network id on this host (GET
// /networks/ID: for a Swarm network the host has, the host's instance).
func (e *dockerEngine) Endpoints(ctx context.Context, id string) (map[string]bool, error) {
	var n struct {
		Containers map[string]struct{ EndpointID string }
	}
	out := map[string]bool{}
	found, err := e.get(ctx, "/networks/"+url.PathEscape(id), &n)
	if err != nil || !found {
		return out, err
	}
	for _, c := range n.Containers {
		out[c.EndpointID] = true
	}
	return out, nil
}
