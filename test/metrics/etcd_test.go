package metrics_test

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/medianet/medianet/internal/etcdtest"
	"github.com/medianet/medianet/internal/promtest"
)

// etcdConf is medianet-ipam on network name claiming /28 blocks of
// 10.94.0.0/24 in etcd at endpoint.
func etcdConf(name, endpoint, dataDir string) []byte {
	return fmt.Appendf(nil, `{"cniVersion":"1.1.0","name":%q,"type":"macvlan","ipam":{"type":"medianet-ipam",
		"subnet":"10.94.0.0/24","blockSize":28,"dataDir":%q,"etcd":{"endpoints":[%q],"requestTimeout":"1s"}}}`, name, dataDir, endpoint)
}

// TestEtcdNetworkInPrometheus: for a network whose blocks are claimed in
// a real etcd, the agent's range gauges follow the claims of this node and
// of another one; for a network whose etcd cannot be reached, the agent's
// own reads count as etcd errors and the docs' etcd alert turns pending.
func TestEtcdNetworkInPrometheus(t *testing.T) {
	etcdtest.SkipUnlessAvailable(t)
	promtest.SkipUnlessAvailable(t)
	srv := etcdtest.Start(t, etcdtest.Options{})
	dataA, dataB, confDir := t.TempDir(), t.TempDir(), t.TempDir()
	good := etcdConf("cluster", srv.Endpoints()[0], dataA)
	dead := etcdConf("dead", etcdtest.ClosedEndpoint(t), dataA)
	for name, c := range map[string][]byte{"10-cluster.conf": good, "20-dead.conf": dead} {
		if err := os.WriteFile(filepath.Join(confDir, name), c, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ag := startAgent(t, dataA, "--cni-conf-dir", confDir, "--node", "node-a")
	prom := promtest.Start(t, promtest.Options{Targets: []string{ag.addr}, RuleFiles: []string{docRules(t)}})

	add := func(node, dataDir, cid string) netip.Addr {
		c := cniCall{plugin: bin("medianet-ipam"), verb: "ADD", cid: cid, conf: etcdConf("cluster", srv.Endpoints()[0], dataDir),
			env: []string{"MEDIANET_NODE=" + node}}
		got := c.run(t)
		var res struct {
			IPs []struct{ Address string } `json:"ips"`
		}
		if got.Exit != 0 || json.Unmarshal([]byte(got.Stdout), &res) != nil || len(res.IPs) != 1 {
			t.Fatalf("ADD %s on %s: %v", cid, node, got)
		}
		return netip.MustParsePrefix(res.IPs[0].Address).Addr()
	}
	for i := range 3 {
		add("node-a", dataA, fmt.Sprintf("a%d", i))
	}
	sel := `{network="cluster",node="node-a",subnet="10.94.0.0/24"}`
	// 256 less network, broadcast and default gateway; this node's claim
	// holds 3 of them, its other addresses stay free for it.
	prom.WaitFor(t, "medianet_ipam_range_addresses"+sel, 30*time.Second, promtest.Value(253))
	prom.WaitFor(t, "medianet_ipam_addresses_in_use"+sel, 30*time.Second, promtest.Value(3))
	prom.WaitFor(t, "medianet_ipam_range_addresses_free"+sel, 30*time.Second, promtest.Value(250))
	// The plugin (medianet-ipam-etcd, run by medianet-ipam) reports its
	// claim: one block for three addresses.
	prom.WaitFor(t, `medianet_ipam_block_claims_total{network="cluster",node="node-a"}`, 30*time.Second, promtest.Value(1))

	// Another node (its own store) claims a block: gone from node-a's range.
	ip := add("node-b", dataB, "b0")
	other := netip.PrefixFrom(ip, 28).Masked()
	reserved := 0
	for _, r := range []string{"10.94.0.0", "10.94.0.1", "10.94.0.255"} {
		if other.Contains(netip.MustParseAddr(r)) {
			reserved++
		}
	}
	prom.WaitFor(t, "medianet_ipam_range_addresses_free"+sel, 30*time.Second, promtest.Value(float64(250-(16-reserved))))

	prom.WaitFor(t, `medianet_ipam_etcd_errors_total{network="dead",source="agent"} > 0`, 30*time.Second,
		func(s []promtest.Sample) bool { return len(s) == 1 })
	// An ADD on the unreachable network: the plugin reports its failed
	// claim and etcd errors.
	if got := (cniCall{plugin: bin("medianet-ipam"), verb: "ADD", cid: "d0", conf: dead, env: []string{"MEDIANET_NODE=node-a"}}).run(t); got.Exit == 0 {
		t.Fatalf("ADD on a network with unreachable etcd succeeded: %v", got)
	}
	prom.WaitFor(t, `medianet_ipam_block_claim_failures_total{network="dead",node="node-a"} > 0`, 30*time.Second,
		func(s []promtest.Sample) bool { return len(s) == 1 })
	prom.WaitFor(t, `medianet_ipam_etcd_errors_total{network="dead",source="plugin"} > 0`, 30*time.Second,
		func(s []promtest.Sample) bool { return len(s) == 1 })
	prom.WaitFor(t, `medianet_ipam_range_addresses{network="dead"}`, 5*time.Second,
		func(s []promtest.Sample) bool { return len(s) == 0 })
	wait(t, "MedianetEtcdClaimErrors pending for network dead", 30*time.Second, func() (bool, string) {
		rs := rules_(t, prom)
		return alertState(rs, "MedianetEtcdClaimErrors") != "inactive", fmt.Sprint(rs)
	})
	if log, _ := os.ReadFile(ag.log); !strings.Contains(string(log), `network=dead`) {
		t.Errorf("the agent's log does not name the unreachable network:\n%s", log)
	}
}
