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
//     comes from each network's configuration (NetworkSource: CNI conf
//     dirs, Docker's pools) and, for networks whose blocks are claimed in
//     etcd, from one read of the claimed blocks made after the View.
//   - Reports from the exec'd CNI plugins (package metrics/report): one
//     unixgram datagram per verb to <dataDir>/metrics.sock, which the agent
//     binds (ListenReports). Sending never waits; without an agent the
//     datagram is refused at once and dropped.
//   - Docker's calls, timed by wrapping the plugin's HTTP handler
//     (Agent.DockerHandler).
//
// Series names are in names.go; docs/operations.md explains each, with
// alert rules and a Grafana dashboard that test/metrics checks against a
// real Prometheus.
package metrics
