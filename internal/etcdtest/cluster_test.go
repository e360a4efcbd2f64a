package etcdtest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestClusterSurvivesLeaderKill: three members; the leader is killed with
// SIGKILL; another member becomes leader with a higher term, writes go on,
// and the killed member restarts on its data and serves every key.
func TestClusterSurvivesLeaderKill(t *testing.T) {
	c := StartCluster(t, 3, Options{})
	ctx := context.Background()
	cli, err := c.Client()
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	put := func(k string) error {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_, err := cli.Put(ctx, k, "v")
		return err
	}
	for i := range 10 {
		if err := put(fmt.Sprintf("/k/before-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	leader, term, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c.Members[leader].Kill()
	if c.Members[leader].Running() || c.Members[leader].PID() != 0 {
		t.Fatalf("member %d still running after Kill", leader)
	}
	newLeader, newTerm := waitNewLeader(t, c, leader)
	if newTerm <= term {
		t.Errorf("term after the election: got %d, want more than %d", newTerm, term)
	}
	t.Logf("leader m%d killed (term %d); m%d leads in term %d", leader, term, newLeader, newTerm)
	if err := put("/k/after"); err != nil {
		t.Fatalf("put with the leader dead: %v", err)
	}
	c.Members[leader].Restart()
	rc, err := c.Members[leader].RootClient()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	ctx2, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := rc.Get(ctx2, "/k/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || resp.Count != 11 {
		t.Fatalf("restarted member: got %v keys, %v; want 11", resp, err)
	}
	checkPutMetrics(t, c, leader, 11)
}

func waitNewLeader(t *testing.T, c *Cluster, dead int) (int, uint64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		idx, term, err := c.Leader(context.Background())
		if err == nil && idx != dead {
			return idx, term
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no new leader within 20s of killing m%d", dead)
	return -1, 0
}

// checkPutMetrics: every member that ran throughout applied every put
// (etcd_mvcc_put_total counts the puts a member applied since it
// started; the restarted member counts only what it replayed or received
// since), and the members' gRPC counters saw the client's puts.
func checkPutMetrics(t *testing.T, c *Cluster, restarted, puts int) {
	t.Helper()
	handled := 0.0
	for i, m := range c.Members {
		ms, err := m.Metrics(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if got := ms.Sum("etcd_mvcc_put_total"); i != restarted && got < float64(puts) {
			t.Errorf("member %s etcd_mvcc_put_total: got %v, want at least %d", m.Name(), got, puts)
		}
		handled += ms.Sum("grpc_server_handled_total", `grpc_method="Put"`, `grpc_code="OK"`)
	}
	// Counters of the killed member died with it: at least the put made
	// while it was down is counted by a survivor.
	if handled < 1 {
		t.Errorf("grpc_server_handled_total for Put summed over members: got %v, want at least 1", handled)
	}
}

func TestParseMetrics(t *testing.T) {
	tests := []struct {
		name, in string
		series   string
		labels   []string
		want     float64
		wantErr  bool
	}{
		{"plain", "# HELP x\n# TYPE x counter\nx 3\n", "x", nil, 3, false},
		{"labels", "y{a=\"1\",b=\"2\"} 4\ny{a=\"1\",b=\"3\"} 5\ny{a=\"2\"} 7\n", "y", []string{`a="1"`}, 9, false},
		{"label with space", "z{a=\"x y\"} 1.5e3 1700000000\n", "z", []string{`a="x y"`}, 1500, false},
		{"no value", "w{a=\"1\"}\n", "w", nil, 0, true},
		{"bad value", "w 1x\n", "w", nil, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := parseMetrics(strings.NewReader(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err: got %v, want error %v", err, tt.wantErr)
			}
			if err == nil {
				if got := m.Sum(tt.series, tt.labels...); got != tt.want {
					t.Errorf("Sum(%s, %v): got %v, want %v", tt.series, tt.labels, got, tt.want)
				}
			}
		})
	}
}
