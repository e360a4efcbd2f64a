package dockerplugin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
)

// contentType is the media type of plugin requests and responses.
const contentType = "application/vnd.docker.plugins.v1.2+json"

// Handler returns the HTTP handler answering Docker for both drivers on one
// socket: /Plugin.Activate lists NetworkDriver and IpamDriver, and every
// /NetworkDriver.* and /IpamDriver.* call goes to d.
func Handler(d *Driver, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /Plugin.Activate", func(w http.ResponseWriter, _ *http.Request) {
		write(w, http.StatusOK, activateResponse{Implements: []string{networkDriverIface, ipamDriverIface}})
	})
	nd, id := (*networkDriver)(d), (*ipamDriver)(d)
	c := caller{log: log, node: d.node}
	routes := map[string]http.HandlerFunc{
		"NetworkDriver.GetCapabilities":             noBody(c, nd.GetCapabilities),
		"NetworkDriver.AllocateNetwork":             call(c, nd.AllocateNetwork),
		"NetworkDriver.FreeNetwork":                 call(c, nd.FreeNetwork),
		"NetworkDriver.CreateNetwork":               call(c, nd.CreateNetwork),
		"NetworkDriver.DeleteNetwork":               call(c, nd.DeleteNetwork),
		"NetworkDriver.CreateEndpoint":              call(c, nd.CreateEndpoint),
		"NetworkDriver.DeleteEndpoint":              call(c, nd.DeleteEndpoint),
		"NetworkDriver.EndpointOperInfo":            call(c, nd.EndpointInfo),
		"NetworkDriver.Join":                        call(c, nd.Join),
		"NetworkDriver.Leave":                       call(c, nd.Leave),
		"NetworkDriver.DiscoverNew":                 ignore,
		"NetworkDriver.DiscoverDelete":              ignore,
		"NetworkDriver.ProgramExternalConnectivity": ignore,
		"NetworkDriver.RevokeExternalConnectivity":  ignore,
		"IpamDriver.GetCapabilities":                noBody(c, id.GetCapabilities),
		"IpamDriver.GetDefaultAddressSpaces":        noBody(c, id.GetDefaultAddressSpaces),
		"IpamDriver.RequestPool":                    call(c, id.RequestPool),
		"IpamDriver.ReleasePool":                    call(c, id.ReleasePool),
		"IpamDriver.RequestAddress":                 call(c, id.RequestAddress),
		"IpamDriver.ReleaseAddress":                 call(c, id.ReleaseAddress),
	}
	for path, h := range routes {
		mux.Handle("POST /"+path, h)
	}
	return mux
}

// caller is what every call's handler shares: the log, and the node
// name every error Docker shows carries.
type caller struct {
	log  *slog.Logger
	node string
}

// errText is err as Docker shows it, naming this node.
func (c caller) errText(err error) string {
	msg := err.Error()
	if c.node != "" && !strings.Contains(msg, "node "+c.node) {
		msg += " (node " + c.node + ")"
	}
	return msg
}

// call decodes a request of type Req, runs fn and encodes its response or
// its error as {"Err": ...}, which Docker shows to the user.
func call[Req, Resp any](c caller, fn func(*Req) (Resp, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		req := new(Req)
		// Docker sends no body for calls without parameters.
		if err := json.NewDecoder(r.Body).Decode(req); err != nil && !errors.Is(err, io.EOF) {
			write(w, http.StatusBadRequest, errorResponse{Err: c.errText(fmt.Errorf("medianet: decode %s: %w", r.URL.Path, err))})
			return
		}
		resp, err := fn(req)
		if err != nil {
			c.log.Warn("call failed", "call", r.URL.Path, "req", req, "err", err)
			write(w, http.StatusInternalServerError, errorResponse{Err: c.errText(err)})
			return
		}
		c.log.Debug("call", "call", r.URL.Path, "req", req, "resp", resp)
		write(w, http.StatusOK, resp)
	}
}

// noBody is call for the requests that carry no parameters.
func noBody[Resp any](c caller, fn func() (Resp, error)) http.HandlerFunc {
	return call(c, func(*empty) (Resp, error) { return fn() })
}

// ignore answers the optional calls medianet has nothing to do for.
func ignore(w http.ResponseWriter, _ *http.Request) { write(w, http.StatusOK, empty{}) }

func write(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// Listen opens the plugin's unix socket at path, replacing a stale socket
// file left by an earlier run, with mode 0660.
func Listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("dockerplugin: socket directory %q: %w", filepath.Dir(path), err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("dockerplugin: remove stale socket %q: %w", path, err)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("dockerplugin: listen on %q: %w", path, err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		l.Close()
		return nil, fmt.Errorf("dockerplugin: chmod %q: %w", path, err)
	}
	return l, nil
}
