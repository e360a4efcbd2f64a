// Package containerdtest runs Debian's containerd 1.6 with its built-in
// CRI plugin for end-to-end tests and speaks CRI to it over gRPC as
// kubelet does (k8s.io/cri-api, runtime/v1).
//
// Each Containerd is private: its own config file, root, state directory,
// gRPC socket and CNI conf_dir and bin_dir, all under one directory that
// the harness removes. runc is the runtime (cgroupfs), and
// restrict_oom_score_adj is set, since runc cannot lower oom_score_adj on
// the machines these tests run on. The sandbox (pause) image is built
// locally and imported with ctr (image.go): no registry is involved.
//
// Teardown, registered with t.Cleanup and run also when a test fails,
// stops and removes every pod through CRI, then stops the containerd the
// harness started (its PID only), kills the shims that served it (found
// by the socket address on their command line), unmounts what is left
// under its directory and removes the directory, and the network
// namespaces of pods it could not remove. The machine's own containerd
// and Docker's are never touched; the shims keep their sockets and runc
// its state under /run/containerd/s and /run/containerd/runc (paths
// containerd 1.6 fixes), named by hash and ID beside any other
// containerd's, and the CRI plugin names pod namespaces /run/netns/cni-*.
//
// Beside the CRI clients (Containerd.Runtime, Containerd.Images) the
// harness has kubelet's common calls (cri.go: RunPod, Status, StopRemove,
// RunContainer, WaitNetwork), a node's CNI directories (cni.go), the
// pieces of Kubernetes manifests a node receives (manifest.go) and
// containerd's own timers from its metrics endpoint (metrics.go).
package containerdtest
