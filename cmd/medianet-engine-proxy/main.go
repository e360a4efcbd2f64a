// Command medianet-engine-proxy is a read-only proxy to the Docker
// engine's API: it lets through only the GET requests medianetd makes
// (GET /networks, /networks/ID, /info, /nodes/ID; and /_ping and /version,
// which the docker CLI asks first) and refuses everything else with 403. Mount its socket into the managed plugin instead of the
// engine's own, which grants full control of dockerd:
//
//	medianet-engine-proxy --listen unix:///run/medianet/engine.sock
//	docker plugin disable medianet
//	docker plugin set medianet docker.source=/run/medianet/engine.sock
//	docker plugin enable medianet
//
// Flags:
//
//	--listen  where to serve: unix:///PATH (mode 0660) or tcp://HOST:PORT
//	          (default unix:///run/medianet/engine.sock)
//	--engine  the engine: unix:///PATH or tcp://HOST:PORT (default
//	          $DOCKER_HOST, else unix:///var/run/docker.sock)
//
// Every refused request is logged on stderr. Exit codes: 0 after SIGTERM
// or SIGINT, 1 on an error, 2 on bad usage.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/medianet/medianet/dockerplugin"
)

// DefaultListen is --listen's default.
const DefaultListen = "unix:///run/medianet/engine.sock"

func main() {
	fs := flag.NewFlagSet("medianet-engine-proxy", flag.ContinueOnError)
	listen := fs.String("listen", DefaultListen, "serve at unix:///PATH or tcp://HOST:PORT")
	engine := fs.String("engine", "", "the Docker engine, unix:///PATH or tcp://HOST:PORT (default $DOCKER_HOST, else "+dockerplugin.DefaultDockerHost+")")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "medianet-engine-proxy: unexpected argument %q\n", fs.Arg(0))
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, *listen, *engine); err != nil {
		fmt.Fprintln(os.Stderr, "medianet-engine-proxy:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, listen, engine string) error {
	if engine == "" {
		engine = os.Getenv("DOCKER_HOST")
	}
	if engine == "" {
		engine = dockerplugin.DefaultDockerHost
	}
	h, err := dockerplugin.EngineProxy(engine, slog.New(slog.NewTextHandler(os.Stderr, nil)))
	if err != nil {
		return fmt.Errorf("--engine: %w", err)
	}
	l, err := listenOn(listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	fmt.Fprintf(os.Stderr, "medianet-engine-proxy: serving %s, read-only, for %s\n", listen, engine)
	if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// listenOn listens at a unix:///PATH (replacing a stale socket, mode
// 0660) or tcp://HOST:PORT address.
func listenOn(addr string) (net.Listener, error) {
	network, where, err := dockerplugin.ParseDockerHost(addr)
	if err != nil {
		return nil, fmt.Errorf("--listen: %w", err)
	}
	if network == "tcp" {
		return net.Listen("tcp", where)
	}
	if err := os.MkdirAll(filepath.Dir(where), 0o755); err != nil {
		return nil, fmt.Errorf("--listen %s: %w", addr, err)
	}
	if err := os.Remove(where); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("--listen %s: remove stale socket: %w", addr, err)
	}
	l, err := net.Listen("unix", where)
	if err != nil {
		return nil, fmt.Errorf("--listen %s: %w", addr, err)
	}
	if err := os.Chmod(where, 0o660); err != nil {
		l.Close()
		return nil, fmt.Errorf("--listen %s: %w", addr, err)
	}
	return l, nil
}
