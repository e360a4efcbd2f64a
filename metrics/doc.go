// Package metrics is medianet's Prometheus endpoint for one node: what
// medianetd serves on --metrics-listen, in Docker mode and as the
// Kubernetes node agent (medianetd --cni-conf-dir ... without Docker).
//
// Three inputs, one registry (Agent):
//
//   - State, read at scrape time (StoreCollector): the node's IPAM store
//     (<dataDir>/ipam.db) is opened and read in one read-only View that
//     copies each network's held blocks and nothing else, so a scrape costs
//     O(blocks) and holds the store lock (shared) no longer than that View.
//     Addresses in use are the blocks' used bits; the node's whole range
//     comes from each network's configuration (NetworkSource: package agent's CNI
//     configurations, Docker's pools) and, for networks whose blocks are claimed in
//     etcd, from one read of the claimed blocks made after the View.
//   - Reports from the exec'd CNI plugins (package metrics/report): one
//     connection per verb to <dataDir>/metrics.sock, a unix stream socket
//     the agent binds with a large backlog (ListenReports). Sending never
//     waits; without an agent the report is refused at once and dropped.
//     The agent takes a report only from root or its own user
//     (SO_PEERCRED), only with values a plugin can send (report.Check),
//     and labels it only with a network it knows; it counts what it
//     refuses (ReportsRefused).
//   - Docker's calls, timed by wrapping the plugin's HTTP handler
//     (Agent.DockerHandler).
//
// Series names are in names.go; docs/operations.md explains each, with
// alert rules and a Grafana dashboard that test/metrics checks against a
// real Prometheus.
package metrics
