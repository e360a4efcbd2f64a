package metrics

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// StoreCollector serves the state gauges. At each scrape it reads the
// node's IPAM store (one short View, see storeReader) and the networks'
// configurations from its sources; for networks whose blocks are claimed
// in etcd it uses the last read of the claimed blocks (claimReader, in the
// background: a scrape never waits for etcd, and no store lock is ever
// held across that network call).
type StoreCollector struct {
	node    string
	store   storeReader
	sources []NetworkSource
	rec     *Recorder
	log     *slog.Logger
	claims  *claimReader

	descs map[string]*prometheus.Desc

	mu      sync.Mutex
	lastErr string // last configuration error logged, to log changes only
}

var _ prometheus.Collector = (*StoreCollector)(nil)

// stateHelp documents the per-subnet state gauges.
var stateHelp = map[string]string{
	AddressesInUse:     "Addresses handed out (or held for a sticky workload) in the node's held blocks.",
	BlockAddressesFree: "Free addresses in the node's held blocks that it may still hand out (lost blocks excluded).",
	RangeAddresses:     "Addresses the node may hand out in all: its node ranges, or the whole subnet (single node, etcd), less reserved ones.",
	RangeAddressesFree: "Of medianet_ipam_range_addresses, those still free for this node (in etcd mode: free in its blocks plus unclaimed blocks).",
	BlocksHeld:         "Blocks the node holds.",
	BlocksLost:         "Held blocks the node may no longer hand out from (claimed by another node, or outside its ranges).",
}

func newStoreCollector(node, dataDir string, timeout, claimsMaxAge time.Duration, sources []NetworkSource, rec *Recorder, log *slog.Logger) *StoreCollector {
	c := &StoreCollector{node: node, store: storeReader{dir: dataDir, timeout: timeout}, sources: sources, rec: rec, log: log,
		descs: map[string]*prometheus.Desc{}}
	c.claims = newClaimReader(claimsMaxAge, func(network string, err error, changed bool) {
		rec.agentEtcdError(network)
		if changed {
			log.Warn("metrics: cannot read the network's block claims in etcd", "network", network, "err", err)
		}
	})
	for name, help := range stateHelp {
		c.descs[name] = prometheus.NewDesc(name, help, []string{LabelNetwork, LabelNode, LabelSubnet}, nil)
	}
	c.descs[StoreScrapeSuccess] = prometheus.NewDesc(StoreScrapeSuccess,
		"1 when the last scrape read the IPAM store, 0 when it could not (busy, unreadable).", []string{LabelNode}, nil)
	c.descs[StoreScrapeDuration] = prometheus.NewDesc(StoreScrapeDuration,
		"Time the last scrape spent reading the store, configurations and etcd claims.", []string{LabelNode}, nil)
	return c
}

// Describe implements prometheus.Collector.
func (c *StoreCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *StoreCollector) Collect(ch chan<- prometheus.Metric) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	nets, cfgErr := networksByName(ctx, c.sources)
	c.logConfigError(cfgErr)
	blocks, err := c.store.read(ctx)
	ok := 1.0
	if err != nil {
		c.log.Warn("metrics: scrape", "err", err)
		ok = 0
	}
	names := map[string]bool{}
	for n := range blocks {
		names[n] = true
	}
	for n := range nets {
		names[n] = true
	}
	for _, name := range sortedNames(names) {
		c.rec.EnsureNetwork(name)
		if err != nil {
			continue // the store was not read: no state to show
		}
		c.collectNetwork(ch, name, nets[name], blocks[name])
	}
	ch <- prometheus.MustNewConstMetric(c.descs[StoreScrapeSuccess], prometheus.GaugeValue, ok, c.node)
	ch <- prometheus.MustNewConstMetric(c.descs[StoreScrapeDuration], prometheus.GaugeValue, time.Since(start).Seconds(), c.node)
}

func (c *StoreCollector) collectNetwork(ch chan<- prometheus.Metric, name string, n *Network, blocks []blockInfo) {
	var cl claims
	if n != nil && n.Etcd != nil {
		cl.etcd = true
		cl.blocks, cl.readErr = c.claims.claimed(n)
	}
	var states []subnetState
	if n != nil {
		states = subnetStates(&n.Config, blocks, cl)
	} else {
		states = subnetStates(nil, blocks, cl)
	}
	for _, s := range states {
		sub := ""
		if s.subnet.IsValid() {
			sub = s.subnet.String()
		}
		gauge := func(series string, v float64) {
			ch <- prometheus.MustNewConstMetric(c.descs[series], prometheus.GaugeValue, v, name, c.node, sub)
		}
		gauge(AddressesInUse, s.inUse)
		gauge(BlockAddressesFree, s.blockFree)
		gauge(BlocksHeld, s.blocks)
		gauge(BlocksLost, s.lost)
		if s.hasRange {
			gauge(RangeAddresses, s.rangeSize)
			gauge(RangeAddressesFree, s.rangeFree)
		}
	}
}

// logConfigError logs the sources' error when it differs from the last
// one logged, so a broken file is logged once, not at every scrape.
func (c *StoreCollector) logConfigError(err error) {
	text := errorText(err)
	c.mu.Lock()
	changed := text != c.lastErr
	c.lastErr = text
	c.mu.Unlock()
	if changed && text != "" {
		c.log.Warn("metrics: network configurations skipped", "err", text)
	}
}

// networkNames lists the networks the sources name and those with state
// in the store (local files only: no etcd read).
func (c *StoreCollector) networkNames() map[string]bool {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	out := map[string]bool{}
	nets, _ := networksByName(ctx, c.sources)
	for n := range nets {
		out[n] = true
	}
	blocks, _ := c.store.read(ctx)
	for n := range blocks {
		out[n] = true
	}
	return out
}
