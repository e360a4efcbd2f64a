// Command medianetd is medianet's Docker network driver and IPAM driver,
// both named medianet, served on one unix socket:
//
//	medianetd --socket /run/docker/plugins/medianet.sock --data-dir /var/lib/medianet
//	          [--scope local|global] [--node NAME] [--etcd-endpoints URLS]
//
// It runs as a legacy plugin (Docker finds the socket in
// /run/docker/plugins) or inside the managed plugin built by
// scripts/docker-plugin.sh, whose settings SCOPE and NODE supply the
// defaults of --scope and --node.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/medianet/medianet/dockerplugin"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "medianetd:", err)
		os.Exit(1)
	}
}

// firstEnv returns the first non-empty of the named environment variables.
func firstEnv(names ...string) string {
	for _, n := range names {
		if v := os.Getenv(n); v != "" {
			return v
		}
	}
	return ""
}

func run(args []string) error {
	fs := flag.NewFlagSet("medianetd", flag.ContinueOnError)
	socket := fs.String("socket", "/run/docker/plugins/medianet.sock", "unix socket Docker connects to")
	dataDir := fs.String("data-dir", "/var/lib/medianet", "directory of docker.db and ipam.db")
	scope := fs.String("scope", firstEnv("SCOPE", "MEDIANET_SCOPE"), "local (standalone hosts) or global (Swarm); default $SCOPE or local")
	node := fs.String("node", firstEnv("NODE", "MEDIANET_NODE", "NODE_NAME"), "this host's name in --ipam-opt node-ranges; default $NODE, $MEDIANET_NODE, $NODE_NAME or the hostname")
	etcd := fs.String("etcd-endpoints", "", "etcd URLs for cluster-wide blocks (not yet supported by medianetd)")
	debug := fs.Bool("debug", os.Getenv("DEBUG") != "", "log every call")
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		return nil
	} else if err != nil {
		return err
	}
	if *scope == "" {
		*scope = dockerplugin.ScopeLocal
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *etcd != "" {
		// TODO(etcd): claim blocks through ipam/etcdstore as the CNI plugin does.
		return fmt.Errorf("--etcd-endpoints %s: not supported by medianetd yet; use --ipam-opt node-ranges=... or --scope global with Swarm", *etcd)
	}
	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	d, err := dockerplugin.Open(dockerplugin.Config{DataDir: *dataDir, Scope: *scope, Node: *node, Log: log})
	if err != nil {
		return err
	}
	defer d.Close()
	l, err := dockerplugin.Listen(*socket)
	if err != nil {
		return err
	}
	defer os.Remove(*socket)
	srv := &http.Server{Handler: dockerplugin.Handler(d, log), ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	log.Info("serving", "socket", *socket, "dataDir", *dataDir, "scope", *scope, "node", *node)
	if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
