package metrics

import (
	"os"
	"strconv"
	"sync/atomic"

	"github.com/medianet/medianet/metrics/report"
	"github.com/prometheus/client_golang/prometheus"
)

// Recorder turns reports (from the plugins' report socket, and from the Docker
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
	conflicts  *prometheus.CounterVec
	parent     *prometheus.GaugeVec
	reports    *prometheus.CounterVec
	refused    *refusedCollector
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
		conflicts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: AddressConflicts,
			Help: "Addresses another host on the LAN answered for when an ADD or RequestAddress probed them before handing them out (quarantined)."}, byNet),
		parent: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: ParentState,
			Help: "The node agent's last doctor verdict on a CNI network's parent link: 1 for the current state (pass, dropped, parent-missing, parent-down, no-carrier, no-answer, mtu-mismatch), 0 for the others."},
			[]string{LabelNode, LabelLink, LabelState}),
		reports: prometheus.NewCounterVec(prometheus.CounterOpts{Name: Reports,
			Help: "Reports received from the plugins, by result (ok, malformed)."}, []string{LabelNode, LabelResult}),
	}
	r.refused = &refusedCollector{node: node, desc: prometheus.NewDesc(ReportsRefused,
		"Well-formed reports refused, by reason: sender (neither root nor the agent's user), bounds (a value no plugin sends), queue_full (counted by the plugins: the agent's backlog was full).",
		[]string{LabelNode, LabelReason}, nil)}
	for _, c := range []prometheus.Collector{r.ops, r.dur, r.lockWait, r.claims, r.claimFails, r.etcdErrs, r.conflicts, r.parent, r.reports, r.refused} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	// Both results exist from the start, so rate() sees the first one.
	r.reports.WithLabelValues(node, "ok")
	r.reports.WithLabelValues(node, "malformed")
	return r, nil
}

// Observe records one report, its code as a number (medianetd's own
// Docker calls: an HTTP status).
func (r *Recorder) Observe(rep report.Report) {
	r.observe(rep, strconv.FormatUint(uint64(rep.Code), 10))
}

// cniCodes are the codes a CNI verb returns: the spec's (1 to 7, 11, 50,
// 51) and medianet's (100, 101, 999); a delegated IPAM plugin's other codes
// are labelled "other", so that no report creates a series of its own.
var cniCodes = map[uint]bool{0: true, 1: true, 2: true, 3: true, 4: true, 5: true, 6: true, 7: true,
	11: true, 50: true, 51: true, 100: true, 101: true, 999: true}

// observePlugin records a plugin's report (checked by report.Check).
func (r *Recorder) observePlugin(rep report.Report) {
	code := "other"
	if cniCodes[rep.Code] {
		code = strconv.FormatUint(uint64(rep.Code), 10)
	}
	r.received()
	r.observe(rep, code)
}

func (r *Recorder) observe(rep report.Report, code string) {
	net := rep.Network
	r.ops.WithLabelValues(net, r.node, rep.Plugin, rep.Verb, code).Inc()
	r.dur.WithLabelValues(net, r.node, rep.Plugin, rep.Verb).Observe(rep.Duration.Seconds())
	if rep.Plugin != report.PluginDocker {
		r.lockWait.WithLabelValues(net, r.node, rep.Plugin).Observe(rep.LockWait.Seconds())
	}
	r.addClaims(net, rep.Claims, rep.ClaimFailures)
	if rep.EtcdErrors > 0 {
		r.etcdErrs.WithLabelValues(net, r.node, SourcePlugin).Add(float64(rep.EtcdErrors))
	}
	r.AddConflicts(net, rep.Conflicts)
}

func (r *Recorder) addClaims(net string, ok, failed int) {
	if ok > 0 {
		r.claims.WithLabelValues(net, r.node).Add(float64(ok))
	}
	if failed > 0 {
		r.claimFails.WithLabelValues(net, r.node).Add(float64(failed))
	}
}

// AddConflicts counts n addresses of network another host answered for
// (the plugins' reports, and medianetd's own RequestAddress).
func (r *Recorder) AddConflicts(network string, n int) {
	if n > 0 {
		r.conflicts.WithLabelValues(network, r.node).Add(float64(n))
	}
}

// SetParentState records the doctor's verdict state on link: 1 for
// state, 0 for every other of states (the doctor's verdicts, which this
// package does not import).
func (r *Recorder) SetParentState(link, state string, states []string) {
	for _, s := range states {
		v := 0.0
		if s == state {
			v = 1
		}
		r.parent.WithLabelValues(r.node, link, s).Set(v)
	}
}

// EnsureNetwork creates the claim and error counters of network at zero,
// so that increase() and rate() see its first claim or error.
func (r *Recorder) EnsureNetwork(network string) {
	r.claims.WithLabelValues(network, r.node)
	r.claimFails.WithLabelValues(network, r.node)
	r.etcdErrs.WithLabelValues(network, r.node, SourcePlugin)
	r.etcdErrs.WithLabelValues(network, r.node, SourceAgent)
	r.conflicts.WithLabelValues(network, r.node)
}

// agentEtcdError counts a failed scrape-time read of network's claims.
func (r *Recorder) agentEtcdError(network string) {
	r.etcdErrs.WithLabelValues(network, r.node, SourceAgent).Inc()
}

// malformed counts a message that was not a report.
func (r *Recorder) malformed() { r.reports.WithLabelValues(r.node, "malformed").Inc() }

// received counts a report.
func (r *Recorder) received() { r.reports.WithLabelValues(r.node, "ok").Inc() }

// refuse counts a report refused for reason, "" meaning malformed.
func (r *Recorder) refuse(reason string) {
	switch reason {
	case "":
		r.malformed()
	case RefusedSender:
		r.refused.sender.Add(1)
	case RefusedBounds:
		r.refused.bounds.Add(1)
	}
}

// refusedCollector serves ReportsRefused: the agent's own refusals, and
// the plugins' count of reports the full backlog refused (the size of
// report.LostPath, one byte each).
type refusedCollector struct {
	node           string
	desc           *prometheus.Desc
	sender, bounds atomic.Uint64
	lostPath       atomic.Pointer[string] // set by ListenReports
}

// Describe implements prometheus.Collector.
func (c *refusedCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector.
func (c *refusedCollector) Collect(ch chan<- prometheus.Metric) {
	var lost float64
	if p := c.lostPath.Load(); p != nil {
		if fi, err := os.Stat(*p); err == nil {
			lost = float64(fi.Size())
		}
	}
	for reason, v := range map[string]float64{RefusedSender: float64(c.sender.Load()),
		RefusedBounds: float64(c.bounds.Load()), RefusedQueueFull: lost} {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, v, c.node, reason)
	}
}
