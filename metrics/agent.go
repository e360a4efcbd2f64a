package metrics

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/medianet/medianet/metrics/report"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// DefaultStoreTimeout bounds a scrape's wait for the store lock: a scrape
// reports the store unreadable rather than queue behind a stuck writer.
const DefaultStoreTimeout = 2 * time.Second

// Options configure an Agent.
type Options struct {
	// Node labels every series (the node the plugins of this data
	// directory allocate for).
	Node string
	// DataDir holds the node's IPAM store (ipam.db) and the report socket.
	DataDir string
	// Sources give the networks' configurations (package agent for CNI, the
	// daemon's pools for Docker); the first naming a network wins.
	Sources []NetworkSource
	// Collectors are further collectors served beside the store's (the
	// node agent's DHCP leases).
	Collectors []prometheus.Collector
	// StoreTimeout: 0 means DefaultStoreTimeout.
	StoreTimeout time.Duration
	// ClaimsMaxAge: 0 means DefaultClaimsMaxAge.
	ClaimsMaxAge time.Duration
	// Log receives scrape problems; nil discards.
	Log *slog.Logger
	// OnReport, when set, is called with each plugin report after it is
	// recorded (the node agent syncs an etcd network after its DELs). It
	// must not block. Only reports that passed every check reach it, with
	// Network "" when the agent does not know the network.
	OnReport func(report.Report)
	// ReportBacklog is the report socket's listen backlog; 0 means
	// report.Backlog.
	ReportBacklog int
}

// Agent is a node's metrics endpoint: the store's state at scrape time,
// the plugins' reports from the socket in the data directory, and the
// Docker calls of a wrapped handler.
type Agent struct {
	reg  *prometheus.Registry
	rec  *Recorder
	coll *StoreCollector
	l    *net.UnixListener
	wg   sync.WaitGroup

	known    *knownNetworks
	backlog  int
	onReport func(report.Report)
	close    sync.Once
}

// New returns an Agent; it listens for reports only after ListenReports.
func New(o Options) (*Agent, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.StoreTimeout <= 0 {
		o.StoreTimeout = DefaultStoreTimeout
	}
	if o.ClaimsMaxAge <= 0 {
		o.ClaimsMaxAge = DefaultClaimsMaxAge
	}
	reg := prometheus.NewRegistry()
	rec, err := NewRecorder(reg, o.Node)
	if err != nil {
		return nil, err
	}
	coll := newStoreCollector(o.Node, o.DataDir, o.StoreTimeout, o.ClaimsMaxAge, o.Sources, rec, o.Log)
	for _, c := range append([]prometheus.Collector{coll, collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})}, o.Collectors...) {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	if o.ReportBacklog <= 0 {
		o.ReportBacklog = report.Backlog
	}
	a := &Agent{reg: reg, rec: rec, coll: coll, onReport: o.OnReport, backlog: o.ReportBacklog}
	a.known = &knownNetworks{list: coll.networkNames}
	return a, nil
}

// ListenReports binds <DataDir>/metrics.sock and records the plugins'
// reports until Close.
func (a *Agent) ListenReports() error {
	l, err := listenReports(a.coll.store.dir, a.backlog)
	if err != nil {
		return err
	}
	a.l = l
	lost := report.LostPath(a.coll.store.dir)
	a.rec.refused.lostPath.Store(&lost)
	a.wg.Go(func() { serveReports(l, a) })
	return nil
}

// take implements reportSink: a report naming a network the agent does
// not know is recorded with network "", so no sender creates series.
func (a *Agent) take(r report.Report) {
	if !a.known.has(r.Network) {
		r.Network = ""
	}
	a.rec.observePlugin(r)
	if a.onReport != nil {
		a.onReport(r)
	}
}

// refuse implements reportSink.
func (a *Agent) refuse(reason string) { a.rec.refuse(reason) }

// Handler serves the registry in Prometheus's exposition formats.
func (a *Agent) Handler() http.Handler {
	return promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{})
}

// Recorder returns the agent's recorder, for in-process reports.
func (a *Agent) Recorder() *Recorder { return a.rec }

// Close stops listening for reports and removes the socket, and closes
// the etcd clients of scrapes.
func (a *Agent) Close() error {
	var err error
	a.close.Do(func() {
		if a.l != nil {
			err = a.l.Close()
			a.wg.Wait()
			dir := a.coll.store.dir
			for _, p := range []string{report.SocketPath(dir), report.LostPath(dir)} {
				if rerr := os.Remove(p); err == nil && !errors.Is(rerr, fs.ErrNotExist) {
					err = rerr
				}
			}
		}
		a.coll.claims.close()
	})
	return err
}

// DockerHandler wraps the Docker plugin's handler: every NetworkDriver.*
// and IpamDriver.* call is counted and timed as plugin "docker",
// operation the call ("NetworkDriver.Join"), network its NetworkID or
// PoolID, code 0 on success and the HTTP status otherwise. Container
// start is RequestAddress then Join; stop is Leave then ReleaseAddress.
func (a *Agent) DockerHandler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		call := strings.TrimPrefix(r.URL.Path, "/")
		if !strings.HasPrefix(call, "NetworkDriver.") && !strings.HasPrefix(call, "IpamDriver.") {
			next.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, "medianet: read request: "+err.Error(), http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		var ids struct{ NetworkID, PoolID string }
		_ = json.Unmarshal(body, &ids) // calls without a body name no network
		network := ids.PoolID
		if network == "" {
			network = ids.NetworkID
		}
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		start := time.Now()
		next.ServeHTTP(sw, r)
		rep := report.Report{Plugin: report.PluginDocker, Verb: call, Network: network, Duration: time.Since(start)}
		if sw.status != http.StatusOK {
			rep.Code = uint(sw.status)
		}
		a.rec.Observe(rep)
	})
}

// statusWriter remembers the status a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(status int) {
	w.status = status
	w.ResponseWriter.WriteHeader(status)
}
