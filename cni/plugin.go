package cni

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"slices"
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

// tidier is a block source that gives empty blocks back and fails when a
// held block was lost to another node (etcdsource's). Tidy must not fail
// because the source's backend is unreachable.
type tidier interface {
	Tidy(ctx context.Context, st ipam.Store) error
}

// tidy runs the source's Tidy, if it has one.
func (s *session) tidy(ctx context.Context) error {
	if t, ok := s.src.(tidier); ok {
		return t.Tidy(ctx, s.st)
	}
	return nil
}

// emptied reports whether a held block that contained one of ips has no
// allocation left.
func (s *session) emptied(ctx context.Context, network string, ips []netip.Addr) bool {
	empty := false
	_ = s.st.View(ctx, func(tx ipam.Tx) error {
		for _, ip := range ips {
			b, ok, err := tx.BlockContaining(network, ip)
			if err == nil && ok && !slices.ContainsFunc(b.Used, func(w uint64) bool { return w != 0 }) {
				empty = true
			}
		}
		return nil
	})
	return empty
}

// open opens the store and an allocator for c. missingOK makes a missing
// data directory a nil session rather than an error (DEL, GC).
func (p *Plugin) open(ctx context.Context, c *Config, missingOK bool) (*session, error) {
	if _, err := os.Stat(c.DataDir); err != nil && os.IsNotExist(err) {
		if missingOK {
			return nil, nil
		}
		if c.DataDirDefault {
			if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
				return nil, fmt.Errorf("create default data directory %s: %w", c.DataDir, err)
			}
		}
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
	return &session{Allocator: a, st: st, src: src, close: func() { closeSrc(); st.Close() }}, nil
}

func (p *Plugin) source(ctx context.Context, c *Config, st ipam.Store) (ipam.BlockSource, func(), error) {
	if p.Source != nil {
		return p.Source(ctx, c, st)
	}
	if c.UsesEtcd() {
		return nil, nil, configErr("ipam.etcd: this program has no etcd client; run medianet-ipam, or use ipam.nodeRanges")
	}
	return ipam.NewSource(&c.IPAM), func() {}, nil
}

// Add allocates the attachment's addresses and returns them as a result
// of the current spec version (convert with GetAsVersion).
func (p *Plugin) Add(ctx context.Context, args *skel.CmdArgs, c *Config, ips []netip.Addr) (*current.Result, error) {
	s, err := p.open(ctx, c, false)
	if err != nil {
		return nil, err
	}
	defer s.close()
	alloc, err := s.Allocate(ctx, ipam.Request{ContainerID: args.ContainerID, IfName: args.IfName, IPs: ips})
	if err != nil {
		return nil, err
	}
	return Result(c, alloc), nil
}

// Del releases the attachment's addresses. It succeeds when there is
// nothing to release, including when the data directory does not exist.
func (p *Plugin) Del(ctx context.Context, args *skel.CmdArgs, c *Config) error {
	_, _, err := p.Release(ctx, args, c)
	return err
}

// Release is Del returning what it released (ok false: nothing held).
func (p *Plugin) Release(ctx context.Context, args *skel.CmdArgs, c *Config) (ipam.Allocation, bool, error) {
	s, err := p.open(ctx, c, true)
	if err != nil || s == nil {
		return ipam.Allocation{}, false, err
	}
	defer s.close()
	alloc, ok, err := s.Allocator.Release(ctx, args.ContainerID, args.IfName)
	if _, tidies := s.src.(tidier); tidies && err == nil && ok && s.emptied(ctx, c.IPAM.Network, alloc.IPs) {
		// Best effort: mark the block empty so that it is given back
		// after its idle time; a failure here must not fail DEL.
		_ = s.tidy(ctx)
	}
	return alloc, ok, err
}

// Check verifies that the attachment holds its addresses and, when a
// previous result is given, that it lists them.
func (p *Plugin) Check(ctx context.Context, args *skel.CmdArgs, c *Config) error {
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
	// GC is the runtime's periodic cleanup: give back blocks empty for
	// their idle time, and fail on a block lost to another node.
	return gone, s.tidy(ctx)
}

// Status returns nil when an address can be had, else an error wrapping
// ipam.ErrExhausted (map with StatusError).
func (p *Plugin) Status(ctx context.Context, c *Config) error {
	s, err := p.open(ctx, c, false)
	if err != nil {
		return err
	}
	defer s.close()
	return s.Allocator.Status(ctx)
}
