// Package agent is the node agent's adapter to the CNI plugins
// (medianetd --cni-conf-dir, the DaemonSet's agent container): it reads
// which networks the plugins of a data directory use, and keeps their
// block claims (etcd, Kubernetes API) in line with the node's store.
//
//   - ConfDirs reads CNI configuration directories as libcni does, and
//     Recorded the cluster networks (ipam.etcd, ipam.kubernetes) the
//     plugin recorded in the data directory (cni.Record): a network
//     defined only in a Multus NetworkAttachmentDefinition has no file in
//     /etc/cni/net.d. Both are metrics.NetworkSource for the range gauges.
//   - Syncer runs the sync of every cluster network of the conf dirs and
//     of every recorded one with state in the store (etcdsource.Sync for
//     ipam.etcd, kubesource.Sync for ipam.kubernetes, which no runtime
//     without GC would run otherwise): on a timer, and soon after a
//     plugin's report asks for it (a DEL that emptied a block or left a
//     sticky hold), at most once per KickInterval.
//
// The metrics package knows nothing of CNI: this package translates.
package agent
