// Package dockerplugin is medianet's Docker remote network driver and IPAM
// driver, both named medianet and served by one process (cmd/medianetd) on
// one unix socket, as a legacy plugin (/run/docker/plugins/medianet.sock)
// or as a managed v2 plugin.
//
// Network driver: a network is a parent link (-o parent, optionally -o
// vlan, creating "<parent>.<vlan>") and a macvlan mode (-o macvlan_mode);
// several networks may share a parent. Join creates the endpoint's macvlan
// in the host namespace under a temporary name ("mn" and the endpoint ID's
// first 11 characters); Docker moves it into the container and renames it.
// Join returns the gateway and disables Docker's gateway service, so no
// docker_gwbridge is attached.
//
// IPAM driver: pools come from --subnet (required), --ip-range,
// --gateway, --aux-address and --ipam-opt block-size= and node-ranges=;
// addresses live in the IPAM store (ipam.db, package ipam/boltstore) of the
// data directory, one ipam network per pool, so medianetctl lists them.
// With Config.Etcd (medianetd --etcd-endpoints) a local pool without node
// ranges is the ipam network "docker-<subnet>" on every host and claims its
// blocks in etcd (ipam/etcdstore) only when the held ones are full;
// Driver.SyncEtcd, on medianetd's timer, gives idle blocks back.
//
// State: networks, endpoints and pools are kept in StateFile (docker.db, a
// bbolt file of its own) in the data directory and written before a call
// returns, so medianetd survives its own restart and dockerd's. Every call
// is idempotent: creating what exists returns it, deleting what is gone
// succeeds.
//
// Reconciliation: state follows what the Docker engine says exists, not
// what Docker remembered to release (a former Swarm leader never releases
// the cluster's pools; a dockerd killed with SIGKILL forgets its tasks'
// networks). Pools record the networks bound to them (bind.go); a network
// allocated or created again gives back its former addresses. The engine
// (its API, Config.DockerHost; or a read-only EngineProxy in front of it)
// is asked only by the driver's own loops, never from inside a call of
// Docker's (watch.go): a reconcile loop drops the host's pools, networks,
// endpoints and links the engine no longer lists, judged against the time
// it asked and never against what the kernel shows alive (reconcile.go);
// in global scope a leader loop tells when this node follows, so that its
// copies of the Swarm's pools go, and a new leader's allocator gets clean
// ones.
//
// Locks: the driver's mutex is never held across a network call. etcd
// (block claims, SyncEtcd) and the engine are asked without it; their
// answers are applied under it after a re-check.
//
// Errors Docker shows end with the node's name ("(node node-a)").
//
// Scope: ScopeLocal for standalone hosts; ScopeGlobal for Swarm, where the
// manager's IPAM (this driver, address space medianet-global) allocates
// every task's address and AllocateNetwork echoes the options so that
// every node receives the parent, mode and VLAN.
//
// The wire types mirror github.com/docker/go-plugins-helpers, which this
// package does not import: its sdk package needs modules the project does
// not carry (github.com/docker/go-connections, github.com/coreos/go-systemd),
// and each of its handlers answers /Plugin.Activate for one driver only,
// where one socket must announce both.
package dockerplugin
