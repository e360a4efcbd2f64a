// Command medianetd is medianet's Docker network driver and IPAM driver,
// both named medianet, served on one unix socket:
//
//	medianetd --socket /run/docker/plugins/medianet.sock --data-dir /var/lib/medianet
//	          [--scope local|global] [--node NAME] [--etcd-endpoints URLS]
//	          [--etcd-prefix P] [--etcd-ca F] [--etcd-cert F] [--etcd-key F] [--etcd-user U]
//	          [--etcd-sync-interval 1m] [--etcd-idle-release 10m]
//	          [--metrics-listen ADDR] [--web.config.file FILE] [--cni-conf-dir DIR[,DIR...]]
//	medianetd --cni-conf-dir /etc/cni/net.d --data-dir /var/lib/medianet --metrics-listen :9743
//
// With --etcd-endpoints, every local pool without --ipam-opt node-ranges
// claims its blocks in etcd, as the CNI plugin's ipam.etcd does; the etcd
// password comes from env MEDIANET_ETCD_PASSWORD (never a flag: flags
// show in ps). A timer marks empty blocks in etcd and gives back those
// empty for --etcd-idle-release.
//
// In every mode medianetd keeps the DHCP leases of the CNI plugins' DHCP
// networks ("ipam": {"dhcp": {}}) of --data-dir, served on
// <data-dir>/dhcp.sock (package dhcp), and those of the Docker networks
// with --ipam-opt mode=dhcp: they are renewed, persisted in
// <data-dir>/dhcp.db, and picked up again when medianetd restarts.
//
// It runs as a legacy plugin (Docker finds the socket in
// /run/docker/plugins) or inside the managed plugin built by
// scripts/docker-plugin.sh, whose settings SCOPE and NODE supply the
// defaults of --scope and --node.
//
// --metrics-listen serves Prometheus metrics on ADDR/metrics (package
// metrics): the IPAM store's state at each scrape, Docker's calls timed,
// and the reports of the CNI plugins that use the same --data-dir;
// --web.config.file adds TLS and basic auth, in the format of Prometheus'
// exporters (exporter-toolkit). --cni-conf-dir names the CNI
// configuration directories that describe those plugins' networks (node
// ranges, subnets), and makes medianetd sync their etcd networks and
// those the plugins recorded in --data-dir (package agent), also soon
// after the DELs the plugins report, with or without --metrics-listen.
// With --cni-conf-dir and no --socket (or --socket ""), medianetd is the
// node agent of a Kubernetes node and does not serve Docker: it says so
// at start (docs/operations.md).
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
	"strings"
	"syscall"
	"time"

	nodeagent "github.com/medianet/medianet/agent"
	"github.com/medianet/medianet/dockerplugin"
	"github.com/medianet/medianet/ipam"
	"github.com/medianet/medianet/ipam/etcdstore"
	"github.com/medianet/medianet/metrics"
	"github.com/medianet/medianet/metrics/report"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/exporter-toolkit/web"
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

// daemonFlags are medianetd's flags, parsed.
type daemonFlags struct {
	socket, dataDir, scope, node string
	etcd                         etcdFlags
	debug                        bool
	metricsListen, cniConfDirs   string
	webConfig                    string
	// writeKubeconfig: where the node agent writes the CNI plugins'
	// kubeconfig from its ServiceAccount ("" for nowhere).
	writeKubeconfig string
	// doctorInterval: how often the node agent runs the doctor (0: never).
	doctorInterval time.Duration
	// docker: serve the Docker plugin (false in node-agent mode).
	docker bool
}

func parseFlags(args []string) (*daemonFlags, error) {
	var f daemonFlags
	fs := flag.NewFlagSet("medianetd", flag.ContinueOnError)
	fs.StringVar(&f.socket, "socket", "/run/docker/plugins/medianet.sock", "unix socket Docker connects to; \"\" for none (node agent)")
	fs.StringVar(&f.dataDir, "data-dir", "/var/lib/medianet", "directory of docker.db and ipam.db")
	fs.StringVar(&f.scope, "scope", firstEnv("SCOPE", "MEDIANET_SCOPE"), "local (standalone hosts) or global (Swarm); default $SCOPE or local")
	fs.StringVar(&f.node, "node", firstEnv("NODE", "MEDIANET_NODE", "NODE_NAME"), "this host's name in --ipam-opt node-ranges; default $NODE, $MEDIANET_NODE, $NODE_NAME or the hostname")
	f.etcd.register(fs)
	fs.BoolVar(&f.debug, "debug", os.Getenv("DEBUG") != "", "log every call")
	fs.StringVar(&f.metricsListen, "metrics-listen", "", "serve Prometheus metrics on this address (e.g. :9743) at /metrics")
	fs.StringVar(&f.webConfig, "web.config.file", "", "TLS and basic auth for --metrics-listen: a web configuration file as Prometheus' exporters take (exporter-toolkit)")
	fs.StringVar(&f.cniConfDirs, "cni-conf-dir", "", "CNI configuration directories (comma-separated) describing the CNI networks of --data-dir, for metrics and their etcd sync; without --socket, run as the node agent only (no Docker plugin)")
	fs.StringVar(&f.writeKubeconfig, "write-kubeconfig", "", "node agent in a pod: write a kubeconfig at this path (on the host) from the pod's ServiceAccount for the CNI plugins' ipam.kubernetes, and rewrite it when the token rotates")
	fs.DurationVar(&f.doctorInterval, "doctor-interval", 5*time.Minute, "node agent: check the CNI networks' parents with the doctor this often, for CNI STATUS (0: never)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if f.scope == "" {
		f.scope = dockerplugin.ScopeLocal
	}
	socketSet := false
	fs.Visit(func(fl *flag.Flag) { socketSet = socketSet || fl.Name == "socket" })
	f.docker = f.socket != "" && (socketSet || f.cniConfDirs == "")
	if f.webConfig != "" && f.metricsListen == "" {
		return nil, fmt.Errorf("--web.config.file needs --metrics-listen")
	}
	if !f.docker && f.metricsListen == "" && f.cniConfDirs == "" {
		return nil, fmt.Errorf("no --socket, --metrics-listen or --cni-conf-dir: nothing to do; give --cni-conf-dir DIR [--metrics-listen ADDR] to run as the node agent")
	}
	if f.node == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("node name: give --node: %w", err)
		}
		f.node = h
	}
	return &f, nil
}

func run(args []string) error {
	f, err := parseFlags(args)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	} else if err != nil {
		return err
	}
	etcdCfg, err := f.etcd.config()
	if err != nil {
		return err
	}
	if err := web.Validate(f.webConfig); err != nil { // "" is valid: plain HTTP
		return fmt.Errorf("--web.config.file %s: %w", f.webConfig, err)
	}
	level := slog.LevelInfo
	if f.debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	leases, err := startDHCP(ctx, f.dataDir, log)
	if err != nil {
		return err
	}
	defer leases.Close()
	if f.writeKubeconfig != "" {
		if err := startKubeconfig(ctx, f.writeKubeconfig, log); err != nil {
			return fmt.Errorf("--write-kubeconfig: %w", err)
		}
	}
	var d *dockerplugin.Driver
	if f.docker {
		d, err = dockerplugin.Open(dockerplugin.Config{DataDir: f.dataDir, Scope: f.scope, Node: f.node, Log: log, Etcd: etcdCfg, Leases: leases})
		if err != nil {
			return err
		}
		defer d.Close()
	}
	var onReport func(report.Report)
	if f.cniConfDirs != "" {
		// The node agent syncs the CNI plugins' etcd networks: on a
		// timer, and soon after the DELs they report.
		syncer := nodeagent.NewSyncer(cniConfs(f), log)
		onReport = syncer.OnReport
		go syncer.Run(ctx, f.etcd.syncInterval)
	}
	agent, err := startMetrics(ctx, f, d, etcdCfg, onReport, leases.Collector(), log)
	if err != nil {
		return err
	}
	if agent != nil {
		defer agent.Close()
		if d != nil {
			d.OnConflicts(agent.Recorder().AddConflicts)
		}
	}
	if f.cniConfDirs != "" && f.doctorInterval > 0 {
		go runDoctors(ctx, splitList(f.cniConfDirs), f.dataDir, f.doctorInterval, parentStateOf(agent), log)
	}
	if !f.docker {
		if f.socket != "" {
			log.Info("Docker plugin off: --cni-conf-dir without --socket runs the node agent only; give --socket to serve Docker too")
		}
		log.Info("node agent: metrics and etcd sync of the CNI networks", "metrics", f.metricsListen, "dataDir", f.dataDir, "node", f.node, "cniConfDir", f.cniConfDirs)
		<-ctx.Done()
		return nil
	}
	return serveDocker(ctx, f, d, agent, etcdCfg != nil, log)
}

// serveDocker answers Docker on --socket until ctx ends.
func serveDocker(ctx context.Context, f *daemonFlags, d *dockerplugin.Driver, agent *metrics.Agent, etcd bool, log *slog.Logger) error {
	l, err := dockerplugin.Listen(f.socket)
	if err != nil {
		return err
	}
	defer os.Remove(f.socket)
	h := dockerplugin.Handler(d, log)
	if agent != nil {
		h = agent.DockerHandler(h)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go shutdownOnDone(ctx, srv)
	if etcd {
		go syncEtcd(ctx, d, f.etcd.syncInterval)
	}
	log.Info("serving", "socket", f.socket, "dataDir", f.dataDir, "scope", f.scope, "node", f.node, "etcd", f.etcd.endpoints, "metrics", f.metricsListen)
	if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func shutdownOnDone(ctx context.Context, srv *http.Server) {
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
}

// cniConfs is the node agent's view of the CNI networks of --data-dir.
func cniConfs(f *daemonFlags) nodeagent.ConfDirs {
	return nodeagent.ConfDirs{Dirs: splitList(f.cniConfDirs), DataDir: f.dataDir, Node: f.node}
}

// startMetrics listens for the CNI plugins' reports in --data-dir with
// --metrics-listen or --cni-conf-dir (the reports also kick the etcd
// sync), and serves /metrics on --metrics-listen, if given, with
// --web.config.file's TLS and basic auth. It returns nil with neither.
func startMetrics(ctx context.Context, f *daemonFlags, d *dockerplugin.Driver, etcdCfg *etcdstore.Config, onReport func(report.Report), leases prometheus.Collector, log *slog.Logger) (*metrics.Agent, error) {
	if f.metricsListen == "" && f.cniConfDirs == "" {
		return nil, nil
	}
	var sources []metrics.NetworkSource
	if f.cniConfDirs != "" {
		confs := cniConfs(f)
		sources = append(sources, confs, nodeagent.Recorded{DataDir: confs.DataDir, Node: confs.Node})
	}
	if d != nil {
		sources = append(sources, dockerNetworks(d, etcdCfg))
	}
	agent, err := metrics.New(metrics.Options{Node: f.node, DataDir: f.dataDir, Sources: sources, Log: log, OnReport: onReport,
		Collectors: []prometheus.Collector{leases}})
	if err != nil {
		return nil, err
	}
	if err := agent.ListenReports(); err != nil {
		agent.Close()
		return nil, err
	}
	if f.metricsListen == "" {
		return agent, nil
	}
	l, err := net.Listen("tcp", f.metricsListen)
	if err != nil {
		agent.Close()
		return nil, fmt.Errorf("--metrics-listen %s: %w", f.metricsListen, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", agent.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go shutdownOnDone(ctx, srv)
	go func() {
		err := web.Serve(l, srv, &web.FlagConfig{WebConfigFile: &f.webConfig}, log)
		if !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", "err", err)
		}
	}()
	return agent, nil
}

// ipamNetworkLister is what the Docker driver tells about its pools: the
// ipam configuration of each, as this host sees it, those with static
// ranges apart from those whose blocks are claimed in etcd.
type ipamNetworkLister interface {
	IPAMNetworks(ctx context.Context) (static, etcd []ipam.Config, err error)
}

// dockerNetworks is the metrics source of the Docker driver's pools, when
// the driver lists them (dockerplugin.Driver.IPAMNetworks); without it,
// Docker networks get the store's gauges but no range gauges.
func dockerNetworks(d *dockerplugin.Driver, etcdCfg *etcdstore.Config) metrics.NetworkSource {
	return metrics.Static(func(ctx context.Context) ([]metrics.Network, error) {
		l, ok := any(d).(ipamNetworkLister)
		if !ok {
			return nil, nil
		}
		static, etcd, err := l.IPAMNetworks(ctx)
		var out []metrics.Network
		for _, c := range static {
			out = append(out, metrics.Network{Config: c})
		}
		for _, c := range etcd {
			if etcdCfg != nil {
				out = append(out, metrics.Network{Config: c, Etcd: etcdCfg})
			}
		}
		return out, err
	})
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(v string) []string {
	var out []string
	for item := range strings.SplitSeq(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}
