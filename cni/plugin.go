package cni

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/medianet/medianet/ipam"
	"github.com/medianet/medianet/ipam/boltstore"
)

// Plugin runs the IPAM verbs. The zero value is ready: bbolt store in the
// configured dataDir, static or whole-subnet block source.
type Plugin struct {
	Env Env
	// StoreTimeout bounds the wait for a busy store; 0 means env
	// MEDIANET_STORE_TIMEOUT (a Go duration such as "30s"), else the
	// boltstore default (10s).
	StoreTimeout time.Duration
	// Source returns the block source for c over the node's open store
	// st; the returned func releases what the source holds. nil means
	// nodeRanges, else the whole subnet; cmd/medianet-ipam sets
	// etcdsource.Source here for ipam.etcd, so that only it links the etcd
	// client.
	Source func(ctx context.Context, c *Config, st ipam.Store) (ipam.BlockSource, func(), error)

	// stats adds up what the verb's sessions did, for the metrics report.
	stats Stats
}

// Stats is what a verb did that the node's metrics count.
type Stats struct {
	// LockWait is how long the verb waited for the node's store lock
	// (other processes' transactions).
	LockWait time.Duration
	// Claims, ClaimFailures and EtcdErrors count the blocks obtained from
	// etcd, the claims that failed, and the etcd round trips that failed.
	Claims, ClaimFailures, EtcdErrors int
	// Conflicts counts the addresses another host answered for
	// (quarantined by the main plugin's ADD).
	Conflicts int
	// Sync: a DEL emptied a block or left a sticky hold, for the node
	// agent to sync an etcd network soon.
	Sync bool
}

// Stats returns what this Plugin's verbs did.
func (p *Plugin) Stats() Stats { return p.stats }

// claimStatser is a block source that counts its claims (etcdsource's).
type claimStatser interface {
	ClaimStats() (claims, failed, etcdErrors int)
}

// Load parses args' configuration and resolves node and requested IPs.
func (p *Plugin) Load(args *skel.CmdArgs) (*Config, []netip.Addr, error) {
	c, err := ParseConfig(args.StdinData)
	if err != nil {
		return nil, nil, err
	}
	kv, err := ParseArgs(args.Args)
	if err != nil {
		return nil, nil, err
	}
	if c.IPAM.Node, err = p.Env.Node(c, kv); err != nil {
		return nil, nil, err
	}
	if ns, name := kv["K8S_POD_NAMESPACE"], kv["K8S_POD_NAME"]; ns != "" && name != "" {
		c.Workload = ns + "/" + name
	}
	if c.DHCP != nil {
		return c, nil, nil // the server picks; IP= and ips are not asked for
	}
	if err := c.IPAM.Validate(); err != nil {
		return nil, nil, fmt.Errorf("ipam.%w", err)
	}
	ips, err := RequestedIPs(c, kv)
	return c, ips, err
}

// session is an open store with its block source and allocator.
type session struct {
	*ipam.Allocator
	st    ipam.Store
	src   ipam.BlockSource
	close func()
}

// tidier is a block source that brings its cluster store in line with
// the node's (etcdsource's: usage marks, empty blocks given back, lost
// blocks recorded). Tidy must not fail because the source's backend is
// unreachable. It runs on GC only: never on DEL, which must not wait for
// the network.
type tidier interface {
	Tidy(ctx context.Context, st ipam.Store) error
}

// settler is a block source whose sticky holds expire through its
// cluster store (etcdsource's: etcdstore.Source.SettleDue).
type settler interface {
	SettleDue(ctx context.Context, st ipam.Store, now time.Time) error
}

// settle expires this node's sticky holds whose time is up, if any, after
// the verb's own transaction (never under the store lock), so holds go on
// every node without help from a node agent or the runtime's GC. Its
// failure is not the verb's.
func (s *session) settle(ctx context.Context) {
	if st, ok := s.src.(settler); ok {
		_ = st.SettleDue(ctx, s.st, s.Now())
	}
}

// tidy runs the source's Tidy, if it has one.
func (s *session) tidy(ctx context.Context) error {
	if t, ok := s.src.(tidier); ok {
		return t.Tidy(ctx, s.st)
	}
	return nil
}

// open opens the store and an allocator for c. missingOK makes a missing
// data directory a nil session rather than an error (DEL, GC).
func (p *Plugin) open(ctx context.Context, c *Config, missingOK bool) (*session, error) {
	if _, err := os.Stat(c.DataDir); missingOK && errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	timeout := p.StoreTimeout
	if v := p.Env.getenv("MEDIANET_STORE_TIMEOUT"); timeout == 0 && v != "" {
		var err error
		if timeout, err = time.ParseDuration(v); err != nil {
			return nil, configErr("env MEDIANET_STORE_TIMEOUT %q is not a duration such as \"30s\"", v)
		}
	}
	st, err := boltstore.Open(ctx, c.DataDir, boltstore.Options{Timeout: timeout})
	if err != nil {
		return nil, fmt.Errorf("ipam.dataDir: %w", err)
	}
	src, closeSrc, err := p.source(ctx, c, st)
	if err != nil {
		st.Close()
		return nil, err
	}
	a, err := ipam.NewAllocator(c.IPAM, st, src)
	if err != nil {
		closeSrc()
		st.Close()
		return nil, err
	}
	closeAll := func() {
		p.stats.LockWait += st.LockWait()
		if cs, ok := src.(claimStatser); ok {
			c, f, e := cs.ClaimStats()
			p.stats.Claims, p.stats.ClaimFailures, p.stats.EtcdErrors = p.stats.Claims+c, p.stats.ClaimFailures+f, p.stats.EtcdErrors+e
		}
		closeSrc()
		st.Close()
	}
	return &session{Allocator: a, st: st, src: src, close: closeAll}, nil
}

func (p *Plugin) source(ctx context.Context, c *Config, st ipam.Store) (ipam.BlockSource, func(), error) {
	if p.Source != nil {
		if c.UsesEtcd() || c.UsesKubernetes() {
			// For the node agent's sync (Record), etcd and Kubernetes
			// networks alike; a record that cannot be written costs this
			// verb nothing: the agent syncs what it knows.
			_ = Record(c)
		}
		return p.Source(ctx, c, st)
	}
	if c.UsesEtcd() {
		return nil, nil, configErr("ipam.etcd: this program has no etcd client; run medianet-ipam, or use ipam.nodeRanges")
	}
	if c.UsesKubernetes() {
		return nil, nil, configErr("ipam.kubernetes: this program has no Kubernetes client; run medianet-ipam, or use ipam.nodeRanges")
	}
	return ipam.NewSource(&c.IPAM), func() {}, nil
}

// Add allocates the attachment's addresses and returns them as a result
// of the current spec version (convert with GetAsVersion).
func (p *Plugin) Add(ctx context.Context, args *skel.CmdArgs, c *Config, ips []netip.Addr) (*current.Result, error) {
	if c.DHCP != nil {
		return p.dhcpAdd(ctx, args, c)
	}
	if !c.IPAM.HasNodeRange() {
		// Refused before the store is touched; DEL and GC still work.
		return nil, fmt.Errorf("network %q: %w", c.IPAM.Network, c.IPAM.NodeRangeError())
	}
	s, err := p.open(ctx, c, false)
	if err != nil {
		return nil, err
	}
	defer s.close()
	// Due holds first: an expired hold must not keep its address from
	// this ADD (it may ask for it) until a sync comes by.
	s.settle(ctx)
	alloc, err := s.Allocate(ctx, ipam.Request{ContainerID: args.ContainerID, IfName: args.IfName, IPs: ips, Workload: c.Workload})
	if err != nil {
		return nil, err
	}
	return Result(c, alloc), nil
}

// Del releases the attachment's addresses. It succeeds when there is
// nothing to release, including when the data directory does not exist.
func (p *Plugin) Del(ctx context.Context, args *skel.CmdArgs, c *Config) error {
	if p.Env.getenv(abortEnv) == "1" {
		return p.Abort(ctx, args, c)
	}
	_, _, err := p.Release(ctx, args, c)
	return err
}

// abortEnv, set to "1" by the medianet plugin on the DEL with which it
// undoes a failed ADD, makes medianet-ipam's DEL an Abort.
const abortEnv = "MEDIANET_ABORT"

// Abort undoes an ADD whose caller failed after it (ipam.Allocator.Abort):
// nothing is left, and a sticky hold the ADD took is given back.
func (p *Plugin) Abort(ctx context.Context, args *skel.CmdArgs, c *Config) error {
	if c.DHCP != nil {
		_, _, err := p.dhcpRelease(ctx, args, c)
		return err
	}
	s, err := p.open(ctx, c, true)
	if err != nil || s == nil {
		return err
	}
	defer s.close()
	return s.Allocator.Abort(ctx, args.ContainerID, args.IfName)
}

// Release is Del returning what it released (ok false: nothing held).
func (p *Plugin) Release(ctx context.Context, args *skel.CmdArgs, c *Config) (ipam.Allocation, bool, error) {
	if c.DHCP != nil {
		return p.dhcpRelease(ctx, args, c)
	}
	s, err := p.open(ctx, c, true)
	if err != nil || s == nil {
		return ipam.Allocation{}, false, err
	}
	defer s.close()
	// An emptied block is marked and given back by GC or the node
	// agent's sync, never while a runtime waits on DEL. On a sticky etcd
	// network the DEL tells etcd of the hold it leaves (bounded by the
	// request timeout), and expires holds whose time is up.
	alloc, ok, err := s.Allocator.Release(ctx, args.ContainerID, args.IfName)
	if err == nil {
		s.settle(ctx)
	}
	if err == nil && ok && (c.UsesEtcd() || c.UsesKubernetes()) {
		p.stats.Sync = p.stats.Sync || (alloc.Workload != "" && c.IPAM.Sticky > 0) || ipam.Emptied(ctx, s.st, c.IPAM.Network, alloc.IPs)
	}
	return alloc, ok, err
}

// Check verifies that the attachment holds its addresses and, when a
// previous result is given, that it lists them.
func (p *Plugin) Check(ctx context.Context, args *skel.CmdArgs, c *Config) error {
	if c.DHCP != nil {
		return p.dhcpCheck(ctx, args, c)
	}
	s, err := p.open(ctx, c, false)
	if err != nil {
		return err
	}
	defer s.close()
	alloc, err := s.Get(ctx, args.ContainerID, args.IfName)
	if err != nil {
		return err
	}
	if c.Net.RawPrevResult == nil {
		return nil
	}
	prev, err := prevResult(c)
	if err != nil {
		return err
	}
	for _, ip := range alloc.IPs {
		found := false
		for _, pc := range prev.IPs {
			if a, ok := netip.AddrFromSlice(pc.Address.IP); ok && a.Unmap() == ip {
				found = true
			}
		}
		if !found {
			return fmt.Errorf("check %s/%s: allocated %s is missing from prevResult: %w", args.ContainerID, args.IfName, ip, ipam.ErrCorrupt)
		}
	}
	return nil
}

// GC releases every allocation of the network not in valid.
func (p *Plugin) GC(ctx context.Context, c *Config, valid []types.GCAttachment) error {
	_, err := p.Collect(ctx, c, valid)
	return err
}

// Collect is GC returning the allocations it released.
func (p *Plugin) Collect(ctx context.Context, c *Config, valid []types.GCAttachment) ([]ipam.Allocation, error) {
	if valid == nil {
		// Releasing everything on a GC without the list would drop every
		// live pod's address: refuse, as a configuration error.
		return nil, configErr("GC without cni.dev/valid-attachments: the runtime must list the attachments to keep (an empty list releases all)")
	}
	if c.DHCP != nil {
		return p.dhcpCollect(ctx, c, valid)
	}
	s, err := p.open(ctx, c, true)
	if err != nil || s == nil {
		return nil, err
	}
	defer s.close()
	keep := make([]ipam.Attachment, len(valid))
	for i, v := range valid {
		keep[i] = ipam.Attachment{ContainerID: v.ContainerID, IfName: v.IfName}
	}
	gone, err := s.GC(ctx, keep)
	if err != nil {
		return gone, err
	}
	// GC is the runtime's periodic cleanup: publish usage, give back
	// blocks empty for their idle time, record blocks lost to another
	// node (STATUS then reports them).
	return gone, s.tidy(ctx)
}

// Status returns nil when an address can be had, else an error wrapping
// ipam.ErrExhausted (map with StatusError).
func (p *Plugin) Status(ctx context.Context, c *Config) error {
	if c.DHCP != nil {
		return p.dhcpStatus(ctx, c)
	}
	s, err := p.open(ctx, c, false)
	if err != nil {
		return err
	}
	defer s.close()
	return s.Allocator.Status(ctx)
}
