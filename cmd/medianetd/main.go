// Command medianetd is medianet's Docker network driver and IPAM driver,
// both named medianet, served on one unix socket:
//
//	medianetd --socket /run/docker/plugins/medianet.sock --data-dir /var/lib/medianet
//	          [--scope local|global] [--node NAME] [--etcd-endpoints URLS]
//	          [--etcd-prefix P] [--etcd-ca F] [--etcd-cert F] [--etcd-key F] [--etcd-user U]
//	          [--etcd-sync-interval 1m] [--etcd-idle-release 10m]
//
// With --etcd-endpoints, every local pool without --ipam-opt node-ranges
// claims its blocks in etcd, as the CNI plugin's ipam.etcd does; the etcd
// password comes from env MEDIANET_ETCD_PASSWORD (never a flag: flags
// show in ps). A timer marks empty blocks in etcd and gives back those
// empty for --etcd-idle-release.
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
	var ef etcdFlags
	ef.register(fs)
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
	etcdCfg, err := ef.config()
	if err != nil {
		return err
	}
	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	d, err := dockerplugin.Open(dockerplugin.Config{DataDir: *dataDir, Scope: *scope, Node: *node, Log: log, Etcd: etcdCfg})
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
	if etcdCfg != nil {
		go syncEtcd(ctx, d, ef.syncInterval)
	}
	log.Info("serving", "socket", *socket, "dataDir", *dataDir, "scope", *scope, "node", *node, "etcd", ef.endpoints)
	if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
