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
	routes := map[string]http.HandlerFunc{
		"NetworkDriver.GetCapabilities":             noBody(log, nd.GetCapabilities),
		"NetworkDriver.AllocateNetwork":             call(log, nd.AllocateNetwork),
		"NetworkDriver.FreeNetwork":                 call(log, nd.FreeNetwork),
		"NetworkDriver.CreateNetwork":               call(log, nd.CreateNetwork),
		"NetworkDriver.DeleteNetwork":               call(log, nd.DeleteNetwork),
		"NetworkDriver.CreateEndpoint":              call(log, nd.CreateEndpoint),
		"NetworkDriver.DeleteEndpoint":              call(log, nd.DeleteEndpoint),
		"NetworkDriver.EndpointOperInfo":            call(log, nd.EndpointInfo),
		"NetworkDriver.Join":                        call(log, nd.Join),
		"NetworkDriver.Leave":                       call(log, nd.Leave),
		"NetworkDriver.DiscoverNew":                 ignore,
		"NetworkDriver.DiscoverDelete":              ignore,
		"NetworkDriver.ProgramExternalConnectivity": ignore,
		"NetworkDriver.RevokeExternalConnectivity":  ignore,
		"IpamDriver.GetCapabilities":                noBody(log, id.GetCapabilities),
		"IpamDriver.GetDefaultAddressSpaces":        noBody(log, id.GetDefaultAddressSpaces),
		"IpamDriver.RequestPool":                    call(log, id.RequestPool),
		"IpamDriver.ReleasePool":                    call(log, id.ReleasePool),
		"IpamDriver.RequestAddress":                 call(log, id.RequestAddress),
		"IpamDriver.ReleaseAddress":                 call(log, id.ReleaseAddress),
	}
	for path, h := range routes {
		mux.Handle("POST /"+path, h)
	}
	return mux
}

// call decodes a request of type Req, runs fn and encodes its response or
// its error as {"Err": ...}, which Docker shows to the user.
func call[Req, Resp any](log *slog.Logger, fn func(*Req) (Resp, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		req := new(Req)
		// Docker sends no body for calls without parameters.
		if err := json.NewDecoder(r.Body).Decode(req); err != nil && !errors.Is(err, io.EOF) {
			write(w, http.StatusBadRequest, errorResponse{Err: fmt.Sprintf("medianet: decode %s: %v", r.URL.Path, err)})
			return
		}
		resp, err := fn(req)
		if err != nil {
			log.Warn("call failed", "call", r.URL.Path, "err", err)
			write(w, http.StatusInternalServerError, errorResponse{Err: err.Error()})
			return
		}
		log.Debug("call", "call", r.URL.Path)
		write(w, http.StatusOK, resp)
	}
}

// noBody is call for the requests that carry no parameters.
func noBody[Resp any](log *slog.Logger, fn func() (Resp, error)) http.HandlerFunc {
	return call(log, func(*empty) (Resp, error) { return fn() })
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
