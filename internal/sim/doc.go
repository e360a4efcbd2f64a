// Package sim is medianet's deterministic simulator of cluster IPAM
// (issue 18), in the way of FoundationDB's simulation and TigerBeetle's
// VOPR: N nodes in one process, each with the real ipam.Allocator, its
// own real bbolt store (boltstore, with the real claim lock) and the real
// etcd block source and sync (etcdstore.Source, SyncIdle, Reclaim), all
// against one real etcd server, on a fake clock.
//
// Every operation (ADD, DEL, a failed ADD and its rollback, GC, STATUS,
// CHECK, the agent's sync, an operator's reclaim) runs in a goroutine of
// its own and parks at every yield point: before every store transaction
// (the Store is wrapped), before every etcd request (etcdstore.Config.Hook)
// and while it waits for the node's claim lock. Exactly one operation runs
// at a time; a seeded generator decides which one moves next, and when
// the clock jumps, a node's configuration changes, etcd becomes
// unreachable for a node or all, an operation's process is killed at its
// yield point (a panic unwinding it, so its deferred unlocks run as a
// dead process's flocks are released), or a node is lost for good and
// reclaimed.
//
// A world runs against etcd (etcd.go, the default) or, with Runner.Kube,
// against a real kube-apiserver (kube.go): the nodes then use the
// kubernetes source (kubestore.Source, its SyncIdle, Reclaim and
// ReclaimGone) as medianet-ipam-kube does, with a yield point before
// every API request (kubestore.Config.Hook), and the invariants read the
// IPAMBlocks and IPAMStickies as they read etcd's claims and sticky
// records (backend.go holds what the two share). The generator draws only
// what the world's source supports (caps): the kube world has sticky
// periods as the etcd world does, but no blockSize change (refused by
// that source); a lost node's Node object is deleted,
// and its blocks are reclaimed by name (with or without force) or as
// gone (ReclaimGone). A replay of a kube world says "source kube".
//
// A run is a list of Steps. After every step the invariants are checked
// (invariants.go): no address live on two containers, no address usable
// by two nodes, every live address accounted for in etcd as its node's,
// STATUS writes nothing, CHECK finds no corruption, no yield inside a
// store transaction; a final drain (every workload deleted, syncs run,
// periods passed) must leave every store and etcd empty. A failing run
// is replayed from its Steps alone and shrunk by delta debugging (ddmin,
// shrink.go) to the fewest steps that still fail the same way; the
// result is printed with the seed and can be saved under testdata/ as a
// regression test (Replay).
package sim
