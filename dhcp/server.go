package dhcp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"syscall"
	"time"

	"github.com/medianet/medianet/dhcp/dhcpapi"
)

// Handler serves the Manager's API (package dhcpapi) over HTTP.
func (m *Manager) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+dhcpapi.PathAcquire, func(w http.ResponseWriter, r *http.Request) {
		var req dhcpapi.AcquireRequest
		if decode(w, r, &req) {
			l, err := m.Acquire(r.Context(), req)
			answer(w, l, err)
		}
	})
	mux.HandleFunc("POST "+dhcpapi.PathRelease, func(w http.ResponseWriter, r *http.Request) {
		var k dhcpapi.Key
		if decode(w, r, &k) {
			answer(w, struct{}{}, m.Release(r.Context(), k))
		}
	})
	mux.HandleFunc("POST "+dhcpapi.PathGet, func(w http.ResponseWriter, r *http.Request) {
		var k dhcpapi.Key
		if decode(w, r, &k) {
			l, err := m.Get(k)
			answer(w, l, err)
		}
	})
	mux.HandleFunc("POST "+dhcpapi.PathGC, func(w http.ResponseWriter, r *http.Request) {
		var req dhcpapi.GCRequest
		if decode(w, r, &req) {
			ls, err := m.GC(r.Context(), req.Network, req.Valid)
			answer(w, ls, err)
		}
	})
	mux.HandleFunc("POST "+dhcpapi.PathList, func(w http.ResponseWriter, r *http.Request) {
		var req dhcpapi.ListRequest
		if decode(w, r, &req) {
			ls, err := m.List(req.Network)
			answer(w, ls, err)
		}
	})
	return mux
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(v); err != nil {
		answer(w, nil, fmt.Errorf("request: %w: %w", err, dhcpapi.ErrBadRequest))
		return false
	}
	return true
}

func answer(w http.ResponseWriter, v any, err error) {
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		code := http.StatusInternalServerError
		if errors.Is(err, dhcpapi.ErrBadRequest) {
			code = http.StatusBadRequest
		}
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(dhcpapi.ErrorBody{Error: err.Error(), Kind: dhcpapi.Kind(err)})
		return
	}
	_ = json.NewEncoder(w).Encode(v)
}

// Listen binds <dataDir>/dhcp.sock (mode 0600 in the 0700 data
// directory: root and the agent's user only). A socket left by a dead
// agent is replaced; one a live agent listens on is an error.
func Listen(dataDir string) (net.Listener, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("dhcp: data directory %q: %w", dataDir, err)
	}
	path := dhcpapi.SocketPath(dataDir)
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("dhcp: another agent serves %s: stop it, or give this one another data directory", path)
	} else if !errors.Is(err, os.ErrNotExist) && !errors.Is(err, syscall.ECONNREFUSED) {
		return nil, fmt.Errorf("dhcp: socket %s: %w", path, err)
	}
	_ = os.Remove(path)
	old := syscall.Umask(0o177)
	l, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("dhcp: listen on %s: %w", path, err)
	}
	return l, nil
}

// Serve answers the API on l until ctx ends.
func (m *Manager) Serve(ctx context.Context, l net.Listener) error {
	srv := &http.Server{Handler: m.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
