package dockerplugin

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/medianet/medianet/internal/dockertest"
	"github.com/medianet/medianet/internal/etcdtest"
	"github.com/medianet/medianet/internal/nstest"
	"github.com/medianet/medianet/ipam/etcdstore"
)

// etcdRelay is where the driver sees etcd: inside a namespace of its own
// (ens), joined to the test's namespace by a veth pair, a relay passes to
// the real etcd on loopback. Dropping packets to it in ens (blackhole)
// makes every etcd request hang until its timeout, as a partition does;
// heal removes the rule.
type etcdRelay struct {
	ens      *nstest.NS
	endpoint string
}

const relayAddr = "10.239.251.2:2379"

func startEtcdRelay(tb testing.TB) *etcdRelay {
	tb.Helper()
	nstest.SkipUnlessRoot(tb)
	if _, err := exec.LookPath("iptables"); err != nil {
		tb.Skip("needs iptables (Debian package iptables) to blackhole etcd")
	}
	// A relay link left by a test killed before its cleanup holds the
	// address, and its route would take this relay's traffic: say so
	// rather than time out on every claim.
	if out, err := exec.Command("ip", "-o", "addr", "show", "to", "10.239.251.1/32").Output(); err == nil && len(strings.TrimSpace(string(out))) > 0 {
		tb.Fatalf("10.239.251.1 is already on a link (left by a killed test run?); delete it first: %s", out)
	}
	srv := etcdtest.Start(tb, etcdtest.Options{})
	ens := nstest.NewNS(tb, "mnetcd")
	end := nstest.UniqueName("mne")
	if err := nstest.Veth(nstest.Root(), end, ens, "eth0"); err != nil {
		tb.Fatal(err)
	}
	nstest.AddAddrs(tb, nstest.Root(), end, netip.MustParsePrefix("10.239.251.1/30"))
	nstest.AddAddrs(tb, ens, "eth0", netip.MustParsePrefix("10.239.251.2/30"))
	dockertest.Forward(tb, ens, relayAddr, strings.TrimPrefix(srv.Endpoints()[0], "http://"))
	return &etcdRelay{ens: ens, endpoint: "http://" + relayAddr}
}

func (r *etcdRelay) rule(op string) error {
	_, err := r.ens.Exec("iptables", op, "INPUT", "-p", "tcp", "--dport", "2379", "-j", "DROP")
	return err
}

func (r *etcdRelay) blackhole(tb testing.TB) {
	tb.Helper()
	if err := r.rule("-A"); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = r.rule("-D") })
}

func (r *etcdRelay) heal(tb testing.TB) {
	tb.Helper()
	if err := r.rule("-D"); err != nil {
		tb.Fatal(err)
	}
}

// blackholeHost is a driver on the relayed etcd with three pools: full
// (an etcd pool whose held block has no free address: the next address
// needs a claim), roomy (an etcd pool with room in its held block) and
// static (node ranges, no etcd), and a network for endpoint calls.
type blackholeHost struct {
	h                   *harness
	relay               *etcdRelay
	full, roomy, static string
}

func newBlackholeHost(tb testing.TB) *blackholeHost {
	tb.Helper()
	relay := startEtcdRelay(tb)
	// Requests wait 10 s for a blackholed etcd: Docker's calls on a loaded
	// machine take a fraction of that.
	ecfg := &etcdstore.Config{Endpoints: []string{relay.endpoint}, RequestTimeout: 10 * time.Second, IdleRelease: time.Hour}
	bh := &blackholeHost{h: newHarness(tb, Config{Node: "host-a", Etcd: ecfg}, newFakeLinks("lan0")), relay: relay}
	opts := map[string]string{"block-size": "28"}
	bh.full = bh.h.pool("10.61.0.0/24", "", "10.61.0.254", opts)
	first := netip.MustParsePrefix(bh.h.mustAddr(bh.full, "")).Addr()
	block := netip.PrefixFrom(first, 28).Masked() // the block claimed in etcd
	free := 16 - 1
	for _, r := range []string{"10.61.0.0", "10.61.0.254", "10.61.0.255"} { // subnet, gateway, broadcast
		if block.Contains(netip.MustParseAddr(r)) {
			free--
		}
	}
	for range free {
		if a := netip.MustParsePrefix(bh.h.mustAddr(bh.full, "")).Addr(); !block.Contains(a) {
			tb.Fatalf("address %s outside the held block %s", a, block)
		}
	}
	bh.roomy = bh.h.pool("10.62.0.0/24", "", "10.62.0.254", opts)
	bh.h.mustAddr(bh.roomy, "")
	bh.static = bh.h.pool("10.63.0.0/24", "", "10.63.0.254", map[string]string{"node-ranges": "host-a=10.63.0.0/28"})
	bh.h.must("NetworkDriver.CreateNetwork", createNetworkRequest{NetworkID: "n", Options: generic(map[string]string{"parent": "lan0"}),
		IPv4Data: []ipamData{{AddressSpace: LocalAddressSpace, Pool: "10.63.0.0/24", Gateway: "10.63.0.254/24"}}}, nil)
	return bh
}

// dockerCalls is what Docker does for one container on each pool that
// needs no new block: address, endpoint, join, leave, removal.
func (bh *blackholeHost) dockerCalls(i int) error {
	h := bh.h
	for _, pid := range []string{bh.roomy, bh.static} {
		a, err := h.addr(pid, "")
		if err != nil {
			return fmt.Errorf("request address on %s: %w", pid, err)
		}
		ep := fmt.Sprintf("ep%s%013d", pid[len(pid)-4:], i)
		calls := []struct {
			method string
			req    any
		}{
			{"NetworkDriver.CreateEndpoint", createEndpointRequest{NetworkID: "n", EndpointID: ep, Interface: &endpointInterface{Address: a}}},
			{"NetworkDriver.Join", joinRequest{NetworkID: "n", EndpointID: ep}},
			{"NetworkDriver.Leave", endpointRequest{NetworkID: "n", EndpointID: ep}},
			{"NetworkDriver.DeleteEndpoint", endpointRequest{NetworkID: "n", EndpointID: ep}},
			{"IpamDriver.ReleaseAddress", releaseAddressRequest{PoolID: pid, Address: netip.MustParsePrefix(a).Addr().String()}},
		}
		for _, c := range calls {
			if err := h.call(c.method, c.req, nil); err != nil {
				return fmt.Errorf("%s: %w", c.method, err)
			}
		}
	}
	return nil
}

// TestEtcdBlackholed: with etcd blackholed (its packets dropped, not its
// process killed), a claim for the full pool and the etcd sync both wait
// for etcd; meanwhile Docker's calls on the other pools and networks are
// answered, all of them before either waiting call returns: no lock is
// held while etcd is asked. The claim's error names the node and the
// endpoint; once etcd is back the claim succeeds.
func TestEtcdBlackholed(t *testing.T) {
	bh := newBlackholeHost(t)
	bh.relay.blackhole(t)
	claimed := make(chan error, 1)
	go func() { _, err := bh.h.addr(bh.full, ""); claimed <- err }()
	synced := make(chan struct{})
	go func() { bh.h.d.SyncEtcd(context.Background(), time.Now()); close(synced) }()
	time.Sleep(300 * time.Millisecond) // both are waiting for etcd now
	t0 := time.Now()
	for i := range 3 {
		if err := bh.dockerCalls(i); err != nil {
			t.Fatalf("Docker call while etcd is blackholed: %v", err)
		}
	}
	took := time.Since(t0)
	select {
	case err := <-claimed:
		t.Fatalf("the claim returned (%v) before Docker's other calls were answered (%s): they waited for it", err, took)
	case <-synced:
		t.Fatalf("SyncEtcd returned before Docker's calls were answered (%s): they waited for it", took)
	default:
	}
	t.Logf("6 containers' calls answered in %s while etcd was blackholed", took)
	err := <-claimed
	for _, want := range []string{"host-a", relayAddr, "10.61.0.0/24"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("claim with etcd blackholed: err = %v, want one naming %q", err, want)
		}
	}
	<-synced
	bh.relay.heal(t)
	// The client's connection resumes once TCP retransmits (backing off
	// while packets were dropped): a claim succeeds within a minute.
	deadline := time.Now().Add(time.Minute)
	for {
		a, err := bh.h.addr(bh.full, "")
		if err == nil {
			if !netip.MustParsePrefix("10.61.0.0/24").Contains(netip.MustParsePrefix(a).Addr()) {
				t.Errorf("claim once etcd is back gave %s", a)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("claim a minute after etcd came back: %v", err)
		}
	}
}

// BenchmarkEtcdBlackholed measures Docker's calls for one container on
// pools that need no new block (RequestAddress, CreateEndpoint, Join,
// Leave, DeleteEndpoint, ReleaseAddress, on an etcd pool with room and on
// a node-ranges pool) with etcd healthy, then blackholed while claims and
// the etcd sync wait for it, in the same run: 100 containers each per
// iteration. It reports the p50 and p99 latency of each, and the p99
// ratio (blackholed / healthy; target at most 1.2).
func BenchmarkEtcdBlackholed(b *testing.B) {
	bh := newBlackholeHost(b)
	var healthy, holed []time.Duration
	measure := func(into *[]time.Duration, base int) {
		for i := range 100 {
			t0 := time.Now()
			if err := bh.dockerCalls(base + i); err != nil {
				b.Fatal(err)
			}
			*into = append(*into, time.Since(t0))
		}
	}
	b.ResetTimer()
	for i := range b.N {
		measure(&healthy, 1000*i)
		bh.relay.blackhole(b)
		stop := make(chan struct{})
		waiting := make(chan struct{})
		go func() { // keep a claim and a sync waiting for etcd
			defer close(waiting)
			for {
				select {
				case <-stop:
					return
				default:
				}
				done := make(chan struct{})
				go func() { bh.h.d.SyncEtcd(context.Background(), time.Now()); close(done) }()
				_, _ = bh.h.addr(bh.full, "")
				<-done
			}
		}()
		time.Sleep(300 * time.Millisecond)
		measure(&holed, 1000*i+500)
		close(stop)
		bh.relay.heal(b)
		<-waiting
	}
	b.StopTimer()
	for _, m := range []struct {
		name string
		d    []time.Duration
	}{{"healthy", healthy}, {"blackholed", holed}} {
		b.ReportMetric(float64(percentile(m.d, 0.5).Microseconds())/1000, m.name+"-p50-ms")
		b.ReportMetric(float64(percentile(m.d, 0.99).Microseconds())/1000, m.name+"-p99-ms")
	}
	b.ReportMetric(float64(percentile(holed, 0.99))/float64(percentile(healthy, 0.99)), "p99-ratio")
}

func percentile(d []time.Duration, p float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}
