package dockerplugin

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/medianet/medianet/ipam/etcdstore"
	"github.com/medianet/medianet/macvlan"
)

// Config configures a Driver.
type Config struct {
	// DataDir holds StateFile and the IPAM store (ipam.db).
	DataDir string
	// Scope is ScopeLocal (standalone hosts) or ScopeGlobal (Swarm).
	Scope string
	// Node names this host in --ipam-opt node-ranges; empty means the
	// hostname.
	Node string
	// Log receives one line per failed call; nil discards.
	Log *slog.Logger
	// Etcd, when set (medianetd --etcd-endpoints), makes every local pool
	// without --ipam-opt node-ranges claim its blocks in etcd, so hosts
	// sharing the etcd never hand out the same address.
	Etcd *etcdstore.Config
	// DockerHost is the engine's API ("unix:///path", or
	// "tcp://HOST:PORT" without TLS: see ParseDockerHost), asked which
	// networks exist and whether this node leads the Swarm, so that state
	// Docker never released is dropped (watch.go, reconcile.go); empty
	// means env DOCKER_HOST, else DefaultDockerHost. "none" turns the
	// engine off: stale state is then only found by Docker's own calls.
	DockerHost string
	// ReconcileInterval is how often Open's driver compares its state with
	// the engine's networks; 0 means DefaultReconcileInterval, negative
	// never (in global scope the leader is still watched, watch.go).
	ReconcileInterval time.Duration
	// Leases keeps the DHCP leases of --ipam-opt mode=dhcp networks
	// (medianetd's dhcp.Manager); nil refuses such networks' addresses.
	Leases LeaseKeeper
}

// DefaultReconcileInterval is Config.ReconcileInterval's default.
const DefaultReconcileInterval = 30 * time.Second

// addressBook is what the IPAM driver needs from the address store:
// allocate (a wanted address, or any free one) and release by address,
// since Docker's ReleaseAddress names only the address.
type addressBook interface {
	Allocate(ctx context.Context, p pool, node, holder string, want netip.Addr) (netip.Addr, error)
	Release(ctx context.Context, p pool, a netip.Addr) error
	ReleaseAll(ctx context.Context, p pool) error
	// ReleaseExcept frees every address of p but those of keep.
	ReleaseExcept(ctx context.Context, p pool, keep []netip.Addr) error
	// Held reports whether a is allocated in p.
	Held(ctx context.Context, p pool, a netip.Addr) (bool, error)
}

// linkMaker is the netlink work of the network driver, all in the host
// namespace medianetd runs in.
type linkMaker interface {
	ParentExists(name string) error
	EnsureVLAN(parent string, vlan int) (created bool, err error)
	DeleteVLAN(name string) error
	Create(spec macvlan.Spec, name string) error
	Delete(name string) error
	// List names the macvlan links in the host namespace.
	List() ([]string, error)
	// Alive reports whether a macvlan with address mac exists in a
	// container's namespace.
	Alive(mac net.HardwareAddr) (bool, error)
}

// Driver is medianet's Docker network driver and IPAM driver. Every call
// is idempotent, and its state is persisted before the call returns.
type Driver struct {
	// mu serialises calls: each pairs netlink or IPAM work with a state
	// update, and Docker's calls for one network must not interleave. It
	// is never held across a network call: etcd (address allocation,
	// SyncEtcd) and the engine (reconcile.go) are asked without it, and
	// what they answer is applied under it after a re-check.
	mu    sync.Mutex
	st    *state
	addrs addressBook
	links linkMaker
	scope string
	node  string
	log   *slog.Logger
	etcd  *etcdstore.Client // nil without Config.Etcd
	// leases keeps DHCP pools' leases (dhcp.go); nil without Config.Leases.
	leases LeaseKeeper
	eng    engine // nil with DockerHost "none"
	now    func() time.Time
	// onConflicts counts conflicts for metrics (conflict.go).
	onConflicts atomic.Pointer[func(network string, n int)]
	// lastView is the last view of the engine's networks (reconcile loop),
	// nil before the first; notLeader the time since which this node was
	// last seen following (not leading) the Swarm, following the time the
	// current streak of "not leading" answers began (watch.go). Under mu.
	lastView  *engineView
	notLeader time.Time
	following time.Time
	poke      chan struct{}

	stopLoop context.CancelFunc // ends the reconcile loop, if any
	loopDone chan struct{}
}

// Open opens the driver's state in cfg.DataDir with the real IPAM store
// (ipam/boltstore) and netlink (macvlan).
func Open(cfg Config) (*Driver, error) {
	switch cfg.Scope {
	case "":
		cfg.Scope = ScopeLocal
	case ScopeLocal, ScopeGlobal:
	default:
		return nil, fmt.Errorf("dockerplugin: scope %q: %w: use local or global", cfg.Scope, ErrBadOption)
	}
	if cfg.Node == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("dockerplugin: node name: %w", err)
		}
		cfg.Node = h
	}
	var cli *etcdstore.Client
	if cfg.Etcd != nil {
		var err error
		if cli, err = etcdstore.New(*cfg.Etcd); err != nil {
			return nil, fmt.Errorf("dockerplugin: --etcd-endpoints: %w", err)
		}
	}
	eng, err := openEngine(cfg.DockerHost)
	if err != nil {
		if cli != nil {
			cli.Close()
		}
		return nil, err
	}
	st, err := openState(cfg.DataDir)
	if err != nil {
		if cli != nil {
			cli.Close()
		}
		return nil, err
	}
	d := newDriver(cfg, st, &ipamBook{dir: cfg.DataDir, etcd: cli}, hostLinks{})
	d.etcd, d.eng = cli, eng
	if err := d.loadNotLeader(); err != nil {
		d.Close()
		return nil, fmt.Errorf("dockerplugin: %s: %w", StateFile, err)
	}
	if eng != nil {
		if cfg.ReconcileInterval == 0 {
			cfg.ReconcileInterval = DefaultReconcileInterval
		}
		d.startLoops(cfg.ReconcileInterval)
	}
	return d, nil
}

// openEngine returns the engine of host (see Config.DockerHost), nil for
// "none".
func openEngine(host string) (engine, error) {
	if host == "" {
		host = os.Getenv("DOCKER_HOST")
	}
	switch host {
	case "":
		host = DefaultDockerHost
	case "none":
		return nil, nil
	}
	return newDockerEngine(host)
}

func newDriver(cfg Config, st *state, addrs addressBook, links linkMaker) *Driver {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Driver{st: st, addrs: addrs, links: links, scope: cfg.Scope, node: cfg.Node, log: log, now: time.Now,
		poke: make(chan struct{}, 1), leases: cfg.Leases}
}

// Close stops the reconcile loop and closes the state file and the etcd
// connection.
func (d *Driver) Close() error {
	if d.stopLoop != nil {
		d.stopLoop()
		<-d.loopDone
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.etcd != nil {
		d.etcd.Close()
	}
	return d.st.close()
}

// randomID returns n random bytes in hex.
func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
