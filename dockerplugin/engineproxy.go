package dockerplugin

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"regexp"
)

// EngineProxyPaths matches the engine API paths medianetd reads, with or
// without an API version: GET /networks, /networks/ID, /info and
// /nodes/ID, and /_ping and /version, which the docker CLI asks first
// (`docker -H` through the proxy then lists networks). EngineProxy lets
// nothing else through.
var EngineProxyPaths = regexp.MustCompile(`^(/v[0-9]+\.[0-9]+)?/(_ping|version|networks|networks/[0-9A-Za-z_.-]*[0-9A-Za-z_-][0-9A-Za-z_.-]*|info|nodes/[0-9A-Za-z_-]+)$`)

// EngineProxy returns a read-only proxy to the engine at dockerHost (a
// DOCKER_HOST value, see ParseDockerHost): GET and HEAD requests without a
// body for EngineProxyPaths pass, anything else is refused with 403 and a
// message naming what passes. Mounted into the managed plugin instead of
// the engine's socket, it keeps the plugin from creating containers,
// mounting the host's files or anything else the engine's socket allows.
// Every refusal is logged to log (nil: discarded).
func EngineProxy(dockerHost string, log *slog.Logger) (http.Handler, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	network, addr, err := ParseDockerHost(dockerHost)
	if err != nil {
		return nil, err
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.Out.URL.Scheme, r.Out.URL.Host, r.Out.Host = "http", "docker", "docker"
		},
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, network, addr)
			},
			DisableKeepAlives: true,
		},
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if (r.Method != http.MethodGet && r.Method != http.MethodHead) || !EngineProxyPaths.MatchString(r.URL.Path) ||
			r.ContentLength != 0 || r.Header.Get("Upgrade") != "" {
			log.Warn("refused", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprintf(w, "{\"message\":%q}\n", fmt.Sprintf("medianet-engine-proxy: %s %s refused: only GET /_ping, /version, /networks, /networks/ID, /info and /nodes/ID pass", r.Method, r.URL.Path))
			return
		}
		rp.ServeHTTP(w, r)
	}), nil
}
