package metrics

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/medianet/medianet/ipam/etcdstore"
)

// DefaultClaimsMaxAge is how old the claimed blocks of an etcd network
// shown by a scrape may be.
const DefaultClaimsMaxAge = 5 * time.Second

// errNoClaimsYet: the first read of a network's claims is in flight.
var errNoClaimsYet = errors.New("claims not read yet")

// claimReader reads which blocks of a network are claimed in etcd, for
// the range gauges of networks whose blocks come from etcd. A scrape never
// waits for etcd: it takes the last read, and starts a new one in the
// background when that is older than maxAge, so an unreachable etcd
// neither slows nor fails scrapes. It keeps one client per etcd
// configuration. failed is called (outside the lock) for each failed
// read, with changed true when its message differs from the last one.
type claimReader struct {
	maxAge time.Duration
	failed func(network string, err error, changed bool)

	ctx    context.Context // ends at close: stops reads in flight
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	clients map[string]*etcdstore.Client
	reads   map[string]*claimRead
}

// claimRead is the last read of one network's claims.
type claimRead struct {
	blocks  []netip.Prefix
	err     error
	at      time.Time
	running bool
}

func newClaimReader(maxAge time.Duration, failed func(string, error, bool)) *claimReader {
	ctx, cancel := context.WithCancel(context.Background())
	return &claimReader{maxAge: maxAge, failed: failed, ctx: ctx, cancel: cancel,
		clients: map[string]*etcdstore.Client{}, reads: map[string]*claimRead{}}
}

// claimed returns the last read of n's claimed blocks (errNoClaimsYet
// before the first one ends), starting a read when it is stale.
func (r *claimReader) claimed(n *Network) ([]netip.Prefix, error) {
	name := n.Config.Network
	r.mu.Lock()
	defer r.mu.Unlock()
	rd, ok := r.reads[name]
	if !ok {
		rd = &claimRead{err: errNoClaimsYet}
		r.reads[name] = rd
	}
	if !rd.running && time.Since(rd.at) > r.maxAge && r.ctx.Err() == nil {
		rd.running = true
		cfg := *n.Etcd
		r.wg.Go(func() { r.read(name, cfg) })
	}
	return rd.blocks, rd.err
}

// read reads the claims of network and records the outcome.
func (r *claimReader) read(network string, cfg etcdstore.Config) {
	blocks, err := r.fetch(network, cfg)
	r.mu.Lock()
	rd := r.reads[network]
	changed := errorText(err) != errorText(rd.err)
	if err != nil {
		rd.blocks = nil
	} else {
		rd.blocks = blocks
	}
	rd.err, rd.at, rd.running = err, time.Now(), false
	r.mu.Unlock()
	if err != nil && r.ctx.Err() == nil {
		r.failed(network, err, changed)
	}
}

// fetch lists the blocks of network claimed by any node: one prefix Get,
// bounded by the client's request timeout.
func (r *claimReader) fetch(network string, cfg etcdstore.Config) ([]netip.Prefix, error) {
	cli, err := r.client(cfg)
	if err != nil {
		return nil, err
	}
	bcs, err := cli.Claims(r.ctx, network, "")
	if err != nil {
		return nil, fmt.Errorf("metrics: claims of network %q: %w", network, err)
	}
	out := make([]netip.Prefix, len(bcs))
	for i, bc := range bcs {
		out[i] = bc.Block
	}
	return out, nil
}

func (r *claimReader) client(cfg etcdstore.Config) (*etcdstore.Client, error) {
	key := fmt.Sprintf("%#v", cfg)
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.clients[key]; ok {
		return c, nil
	}
	c, err := etcdstore.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("metrics: etcd client: %w", err)
	}
	r.clients[key] = c
	return c, nil
}

// close stops the reads in flight and closes every client.
func (r *claimReader) close() {
	r.cancel()
	r.wg.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, c := range r.clients {
		c.Close()
		delete(r.clients, k)
	}
}
