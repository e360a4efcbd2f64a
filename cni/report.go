package cni

import (
	"time"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/medianet/medianet/metrics/report"
)

// sendReport tells the node agent (medianetd, package metrics) how a verb
// went: one report on a connection to <dataDir>/metrics.sock, queued in
// the agent's backlog and never waited for, lost when no agent listens
// (counted when its backlog is full). It never fails the verb.
func sendReport(plugin, verb, network, dataDir string, start time.Time, st Stats, e *types.Error) {
	r := report.Report{Plugin: plugin, Verb: verb, Network: network, Duration: time.Since(start), LockWait: st.LockWait,
		Claims: st.Claims, ClaimFailures: st.ClaimFailures, EtcdErrors: st.EtcdErrors, Conflicts: st.Conflicts, Sync: st.Sync}
	if e != nil {
		r.Code = e.Code
	}
	_ = report.Send(dataDir, r)
}
