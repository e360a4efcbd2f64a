package dockerplugin

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/medianet/medianet/internal/etcdtest"
	"github.com/medianet/medianet/ipam/etcdstore"
)

const etcdSubnet = "10.60.0.0/24"

// etcdHosts starts a real etcd and two drivers ("hosts") sharing it, each
// with its own data directory and node name.
func etcdHosts(t *testing.T) (*etcdtest.Server, *etcdstore.Config, [2]*harness) {
	t.Helper()
	srv := etcdtest.Start(t, etcdtest.Options{})
	ecfg := &etcdstore.Config{Endpoints: srv.Endpoints(), Prefix: "/medianet-docker", RequestTimeout: 3 * time.Second, IdleRelease: time.Minute}
	var hs [2]*harness
	for i, node := range []string{"host-a", "host-b"} {
		hs[i] = newHarness(t, Config{Node: node, Etcd: ecfg}, newFakeLinks("lan0"))
	}
	return srv, ecfg, hs
}

func block28(a string) netip.Prefix {
	p := netip.MustParsePrefix(a)
	return netip.PrefixFrom(p.Addr(), 28).Masked()
}

// TestEtcdTwoHosts: two hosts allocating from one subnet get addresses
// from different etcd blocks, never the same one; with etcd stopped a host
// keeps allocating from its held blocks, and when they are full Docker is
// told etcd is unreachable, naming the endpoint.
func TestEtcdTwoHosts(t *testing.T) {
	srv, ecfg, hs := etcdHosts(t)
	opts := map[string]string{"block-size": "28"}
	pools := [2]string{hs[0].pool(etcdSubnet, "", "10.60.0.254", opts), hs[1].pool(etcdSubnet, "", "10.60.0.254", opts)}
	owner := map[string]string{}        // address -> host
	blocks := map[netip.Prefix]string{} // block -> host
	take := func(i int) string {
		a := hs[i].mustAddr(pools[i], "")
		host := []string{"host-a", "host-b"}[i]
		if o, dup := owner[a]; dup {
			t.Fatalf("%s handed out by %s and %s", a, o, host)
		}
		owner[a] = host
		if o, ok := blocks[block28(a)]; ok && o != host {
			t.Fatalf("%s of %s lies in block %s used by %s", a, host, block28(a), o)
		}
		blocks[block28(a)] = host
		return a
	}
	for range 20 { // more than one /28 on host-a
		take(0)
	}
	for range 5 {
		take(1)
	}
	perHost := map[string]int{}
	for _, h := range blocks {
		perHost[h]++
	}
	if perHost["host-a"] != 2 || perHost["host-b"] != 1 {
		t.Errorf("blocks per host = %v, want host-a 2, host-b 1", perHost)
	}

	cli, err := etcdstore.New(*ecfg)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	claims, err := cli.Claims(context.Background(), etcdNetName(netip.MustParsePrefix(etcdSubnet)), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(claims) != len(blocks) {
		t.Errorf("etcd holds %d claims, want %d (one per block in use)", len(claims), len(blocks))
	}
	for _, c := range claims {
		if got, want := c.Claim.Node, blocks[c.Block]; got != want {
			t.Errorf("etcd claim of %s by %q, want %q", c.Block, got, want)
		}
	}

	// etcd down: host-b goes on from its held block until it is full.
	srv.Stop()
	held := 0
	var lastErr error
	for range 20 {
		a, err := hs[1].addr(pools[1], "")
		if err != nil {
			lastErr = err
			break
		}
		if _, dup := owner[a]; dup {
			t.Fatalf("%s handed out twice", a)
		}
		if got := blocks[block28(a)]; got != "host-b" {
			t.Fatalf("with etcd down host-b gave %s outside its held block", a)
		}
		owner[a] = "host-b"
		held++
	}
	t.Logf("etcd down: %d addresses from the held block, then: %v", held, lastErr)
	if held < 5 {
		t.Errorf("with etcd down host-b allocated %d addresses from its held block, want at least 5", held)
	}
	if lastErr == nil || !strings.Contains(lastErr.Error(), ecfg.Endpoints[0]) || !strings.Contains(lastErr.Error(), "etcd") {
		t.Errorf("block full and etcd down: err = %v, want one naming etcd and %s", lastErr, ecfg.Endpoints[0])
	}
}

// TestEtcdSyncGivesBlocksBack: after a pool is released, the timer's
// SyncEtcd marks its blocks empty, gives them back once idle, and forgets
// the pool; a host restarted without --etcd-endpoints refuses the pool.
func TestEtcdSyncGivesBlocksBack(t *testing.T) {
	srv, ecfg, hs := etcdHosts(t)
	opts := map[string]string{"block-size": "28"}
	pa := hs[0].pool(etcdSubnet, "", "10.60.0.254", opts)
	pb := hs[1].pool(etcdSubnet, "", "10.60.0.254", opts)
	a := hs[0].mustAddr(pa, "")
	hs[1].mustAddr(pb, "")
	// An --aux-address in host-a's block: host-b leaves it to host-a.
	aux := netip.MustParsePrefix(a).Addr().Next().String()
	if err := hs[1].call("IpamDriver.RequestAddress", requestAddressRequest{PoolID: pb, Address: aux}, nil); err != nil {
		t.Errorf("aux address %s in host-a's block on host-b: %v", aux, err)
	}
	hs[1].must("IpamDriver.ReleasePool", releasePoolRequest{PoolID: pb}, nil)

	now := time.Now()
	for _, at := range []time.Time{now, now.Add(time.Hour)} { // mark empty, then give back
		for _, s := range hs[1].d.SyncEtcd(context.Background(), at) {
			if s.Err != nil || len(s.Lost) > 0 {
				t.Fatalf("SyncEtcd at %v: %+v", at, s)
			}
		}
	}
	cli, err := etcdstore.New(*ecfg)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	net := etcdNetName(netip.MustParsePrefix(etcdSubnet))
	if got, err := cli.Claims(context.Background(), net, "host-b"); err != nil || len(got) != 0 {
		t.Errorf("host-b claims after release and sync = %v (err %v), want none", got, err)
	}
	if got, err := cli.Claims(context.Background(), net, "host-a"); err != nil || len(got) != 1 {
		t.Errorf("host-a claims = %v (err %v), want its one block", got, err)
	}
	err = hs[1].d.st.db.View(func(tx *bolt.Tx) error {
		if n := tx.Bucket(bucketEtcdNets).Stats().KeyN; n != 0 {
			t.Errorf("host-b still tracks %d etcd networks, want 0", n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// etcd down: the sync is quiet (no error), host-a keeps its block.
	srv.Stop()
	for _, s := range hs[0].d.SyncEtcd(context.Background(), now) {
		if s.Err != nil {
			t.Errorf("SyncEtcd with etcd down: %v, want it ignored", s.Err)
		}
	}
	// Without --etcd-endpoints the pool is refused, naming the flag.
	hs[0].restart(Config{Node: "host-a"})
	if _, err := hs[0].addr(pa, ""); err == nil || !strings.Contains(err.Error(), "--etcd-endpoints") {
		t.Errorf("etcd pool without --etcd-endpoints: err = %v, want one naming --etcd-endpoints", err)
	}
}

// TestEtcdRefusesIPRange: --ip-range cannot be combined with etcd blocks
// (without node ranges); the error names both.
func TestEtcdRefusesIPRange(t *testing.T) {
	ecfg := &etcdstore.Config{Endpoints: []string{etcdtest.ClosedEndpoint(t)}}
	h := newHarness(t, Config{Etcd: ecfg}, newFakeLinks("lan0"))
	err := h.call("IpamDriver.RequestPool", requestPoolRequest{AddressSpace: LocalAddressSpace, Pool: etcdSubnet, SubPool: "10.60.0.64/26"}, nil)
	if err == nil || !strings.Contains(err.Error(), "--ip-range") || !strings.Contains(err.Error(), "--etcd-endpoints") {
		t.Errorf("--ip-range with etcd: err = %v, want one naming --ip-range and --etcd-endpoints", err)
	}
	// With node ranges the pool is static and needs no etcd.
	p := h.pool(etcdSubnet, "", "", map[string]string{"node-ranges": "node-a=10.60.0.0/28"})
	if got := h.mustAddr(p, ""); !netip.MustParsePrefix("10.60.0.0/28").Contains(netip.MustParsePrefix(got).Addr()) {
		t.Errorf("node-ranges pool with etcd configured gave %s, want one of 10.60.0.0/28", got)
	}
}
