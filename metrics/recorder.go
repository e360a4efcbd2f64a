package metrics

import (
	"strconv"

	"github.com/medianet/medianet/metrics/report"
	"github.com/prometheus/client_golang/prometheus"
)

// Recorder turns reports (from the plugins' datagrams, and from the Docker
// calls medianetd times) into counters and histograms. Every series is
// labelled with the agent's node.
type Recorder struct {
	node       string
	ops        *prometheus.CounterVec
	dur        *prometheus.HistogramVec
	lockWait   *prometheus.HistogramVec
	claims     *prometheus.CounterVec
	claimFails *prometheus.CounterVec
	etcdErrs   *prometheus.CounterVec
	reports    *prometheus.CounterVec
}

// NewRecorder returns a Recorder for node and registers its series in reg.
func NewRecorder(reg prometheus.Registerer, node string) (*Recorder, error) {
	byNet := []string{LabelNetwork, LabelNode}
	r := &Recorder{
		node: node,
		ops: prometheus.NewCounterVec(prometheus.CounterOpts{Name: Operations,
			Help: "CNI verbs and Docker driver calls handled, by result code (0: success; CNI error code; HTTP status for Docker)."},
			[]string{LabelNetwork, LabelNode, LabelPlugin, LabelOperation, LabelCode}),
		dur: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: OperationDuration,
			Help:    "Wall time of CNI verbs (in the plugin) and Docker driver calls (in medianetd).",
			Buckets: OperationBuckets},
			[]string{LabelNetwork, LabelNode, LabelPlugin, LabelOperation}),
		lockWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: StoreLockWait,
			Help:    "Time one CNI verb waited for the node's IPAM store lock (other processes' transactions).",
			Buckets: LockWaitBuckets},
			[]string{LabelNetwork, LabelNode, LabelPlugin}),
		claims: prometheus.NewCounterVec(prometheus.CounterOpts{Name: BlockClaims,
			Help: "Blocks this node claimed (etcd) for new addresses."}, byNet),
		claimFails: prometheus.NewCounterVec(prometheus.CounterOpts{Name: BlockClaimFailures,
			Help: "Block claims that failed (etcd unreachable, credentials refused, configuration differs from etcd's)."}, byNet),
		etcdErrs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: EtcdErrors,
			Help: "etcd operations that failed: the plugins' (source plugin) and the agent's scrape-time reads (source agent)."},
			[]string{LabelNetwork, LabelNode, LabelSource}),
		reports: prometheus.NewCounterVec(prometheus.CounterOpts{Name: Reports,
			Help: "Datagrams received from the plugins, by result (ok, malformed)."}, []string{LabelNode, LabelResult}),
	}
	for _, c := range []prometheus.Collector{r.ops, r.dur, r.lockWait, r.claims, r.claimFails, r.etcdErrs, r.reports} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	// Both results exist from the start, so rate() sees the first one.
	r.reports.WithLabelValues(node, "ok")
	r.reports.WithLabelValues(node, "malformed")
	return r, nil
}

// Observe records one report.
func (r *Recorder) Observe(rep report.Report) {
	net := rep.Network
	r.ops.WithLabelValues(net, r.node, rep.Plugin, rep.Verb, strconv.FormatUint(uint64(rep.Code), 10)).Inc()
	r.dur.WithLabelValues(net, r.node, rep.Plugin, rep.Verb).Observe(rep.Duration.Seconds())
	if rep.Plugin != report.PluginDocker {
		r.lockWait.WithLabelValues(net, r.node, rep.Plugin).Observe(rep.LockWait.Seconds())
	}
	r.addClaims(net, rep.Claims, rep.ClaimFailures)
	if rep.EtcdErrors > 0 {
		r.etcdErrs.WithLabelValues(net, r.node, SourcePlugin).Add(float64(rep.EtcdErrors))
	}
}

func (r *Recorder) addClaims(net string, ok, failed int) {
	if ok > 0 {
		r.claims.WithLabelValues(net, r.node).Add(float64(ok))
	}
	if failed > 0 {
		r.claimFails.WithLabelValues(net, r.node).Add(float64(failed))
	}
}

// EnsureNetwork creates the claim and error counters of network at zero,
// so that increase() and rate() see its first claim or error.
func (r *Recorder) EnsureNetwork(network string) {
	r.claims.WithLabelValues(network, r.node)
	r.claimFails.WithLabelValues(network, r.node)
	r.etcdErrs.WithLabelValues(network, r.node, SourcePlugin)
	r.etcdErrs.WithLabelValues(network, r.node, SourceAgent)
}

// agentEtcdError counts a failed scrape-time read of network's claims.
func (r *Recorder) agentEtcdError(network string) {
	r.etcdErrs.WithLabelValues(network, r.node, SourceAgent).Inc()
}

// malformed counts a datagram that was not a report.
func (r *Recorder) malformed() { r.reports.WithLabelValues(r.node, "malformed").Inc() }

// received counts a report.
func (r *Recorder) received() { r.reports.WithLabelValues(r.node, "ok").Inc() }
