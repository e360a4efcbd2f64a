package swarm

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/medianet/medianet/internal/dockertest"
)

var (
	subnet24 = netip.MustParsePrefix("10.238.0.0/24")
	gw24     = netip.MustParseAddr("10.238.0.254")
	subnet25 = netip.MustParsePrefix("10.238.0.0/25") // overlaps subnet24
	gw25     = netip.MustParseAddr("10.238.0.126")
)

// TestSwarm runs the Swarm story on three managers, step by step
// (each step needs the ones before): tasks on every node; the leader
// stopped cleanly and killed, with the service scaled up meanwhile and the
// old leaders rejoining; a network removed under one leader and created
// again, overlapping and identical, under a leader that held its pool
// (failovers in both directions); then drain, a dockerd restart, network
// removal and a node leaving for good. Throughout, every address on the
// LAN is held by one container only, and every node's medianet holds
// exactly the addresses the cluster uses.
func TestSwarm(t *testing.T) {
	hs := swarmCluster(t, netip.PrefixFrom(gw24, 24), netip.PrefixFrom(gw25, 25))
	s := &swarmSteps{hs: hs, n1: hs.Hosts[0], n2: hs.Hosts[1], n3: hs.Hosts[2]}
	if l, err := hs.WaitLeader(time.Minute); err != nil || l != s.n1 {
		t.Fatalf("leader after swarm init: %v (%v), want %s", l, err, s.n1.Name)
	}
	for _, step := range []struct {
		name string
		run  func(*testing.T)
	}{
		{"tasks on every node", s.tasksOnEveryNode},
		{"leader stopped cleanly", s.leaderStoppedCleanly},
		{"stopped leader rejoins", s.stoppedLeaderRejoins},
		{"leader killed", s.leaderKilled},
		{"killed leader rejoins", s.killedLeaderRejoins},
		{"overlapping subnet after failover", s.overlappingSubnetAfterFailover},
		{"same subnet after failover", s.sameSubnetAfterFailover},
		{"drain", s.drain},
		{"dockerd restart", s.dockerdRestart},
		{"network removed", s.networkRemoved},
		{"node leaves for good", s.nodeLeavesForGood},
	} {
		if !t.Run(step.name, step.run) {
			t.FailNow()
		}
	}
}

// swarmSteps are TestSwarm's steps, each needing the ones before, on
// three managers n1, n2, n3.
type swarmSteps struct {
	hs         *dockertest.Hosts
	n1, n2, n3 *dockertest.Host
}

// tasksOnEveryNode: a network created once on the leader, a task on
// every node: distinct addresses, macvlans on each node's parent, node 1
// reaching nodes 2 and 3 and the router.
func (s *swarmSteps) tasksOnEveryNode(t *testing.T) {
	swarmNetwork(t, s.n1, "media", subnet24, gw24)
	service(t, s.n1, "janus", "media", 3)
	ts := waitTasks(t, s.hs, "janus", 3)
	perNode := map[string]task{}
	for _, tk := range ts {
		perNode[tk.host.Name] = tk
	}
	if len(perNode) != 3 {
		t.Fatalf("tasks on nodes %v, want one on each of the three", perNode)
	}
	checkTasks(t, s.hs, ts, subnet24, gw24)
	from := perNode[s.n1.Name]
	for _, h := range []*dockertest.Host{s.n2, s.n3} {
		ping(t, from, perNode[h.Name].addr.Addr())
	}
	ping(t, from, gw24)
	if got := s.n1.MustDocker(t, "network", "inspect", "--format", `{{index .Options "parent"}}`, "media"); got != dockertest.Parent {
		t.Errorf("network option parent = %q, want %q echoed by AllocateNetwork", got, dockertest.Parent)
	}
	agrees(t, s.hs, s.n1, subnet24, "janus")
}

// leaderStoppedCleanly: n1 stops with SIGTERM, n2 leads; the service
// scales up.
func (s *swarmSteps) leaderStoppedCleanly(t *testing.T) {
	failover(t, s.hs, s.n1, s.n2, false)
	scale(t, s.hs, s.n2, "janus", 4, subnet24, gw24)
}

// stoppedLeaderRejoins: n1 comes back as a follower; its medianet agrees
// with the cluster.
func (s *swarmSteps) stoppedLeaderRejoins(t *testing.T) {
	s.n1.Start(t)
	nodeReady(t, s.n2, s.n1)
	checkTasks(t, s.hs, waitTasks(t, s.hs, "janus", 4), subnet24, gw24)
	agrees(t, s.hs, s.n2, subnet24, "janus")
}

// leaderKilled: n2 is killed with SIGKILL, n1 leads again (restoring
// media over its own stale copy); the service scales up.
func (s *swarmSteps) leaderKilled(t *testing.T) {
	failover(t, s.hs, s.n2, s.n1, true) // n2's tasks keep running, and keep their addresses on the LAN
	scale(t, s.hs, s.n1, "janus", 5, subnet24, gw24)
}

// killedLeaderRejoins: n2 comes back; Docker kills its old tasks.
func (s *swarmSteps) killedLeaderRejoins(t *testing.T) {
	s.n2.Start(t)
	nodeReady(t, s.n1, s.n2)
	checkTasks(t, s.hs, waitTasks(t, s.hs, "janus", 5), subnet24, gw24)
	agrees(t, s.hs, s.n1, subnet24, "janus") // n2's dead tasks are given back
}

// overlappingSubnetAfterFailover: n2 led while media existed and held
// its pool; n1 removes media (on every host: no link, no address left),
// so any copy n2 kept is stale when it leads again and a network
// overlapping it is created.
func (s *swarmSteps) overlappingSubnetAfterFailover(t *testing.T) {
	removeAll(t, s.hs, s.n1, "janus", "media")
	agrees(t, s.hs, s.n1, subnet24)
	failover(t, s.hs, s.n1, s.n2, false)
	swarmNetwork(t, s.n2, "media2", subnet25, gw25)
	service(t, s.n2, "janus2", "media2", 3)
	ts := waitTasks(t, s.hs, "janus2", 3)
	checkTasks(t, s.hs, ts, subnet25, gw25)
	ping(t, ts[0], ts[1].addr.Addr())
	s.n1.Start(t)
	nodeReady(t, s.n2, s.n1)
	agrees(t, s.hs, s.n2, subnet25, "janus2")
}

// sameSubnetAfterFailover, the other direction: n1 restores media2 after
// a SIGKILL of n2 and removes it; n2 leads again with a stale copy of the
// subnet a new network asks for.
func (s *swarmSteps) sameSubnetAfterFailover(t *testing.T) {
	failover(t, s.hs, s.n2, s.n1, true)
	waitTasks(t, s.hs, "janus2", 3)
	s.n2.Start(t)
	nodeReady(t, s.n1, s.n2)
	agrees(t, s.hs, s.n1, subnet25, "janus2")
	removeAll(t, s.hs, s.n1, "janus2", "media2")
	agrees(t, s.hs, s.n1, subnet25)
	failover(t, s.hs, s.n1, s.n2, false)
	swarmNetwork(t, s.n2, "media3", subnet25, gw25)
	service(t, s.n2, "janus3", "media3", 3)
	checkTasks(t, s.hs, waitTasks(t, s.hs, "janus3", 3), subnet25, gw25)
	s.n1.Start(t)
	nodeReady(t, s.n2, s.n1)
	agrees(t, s.hs, s.n2, subnet25, "janus3") // no address of media2's tasks leaked into media3
}

// drain: a drained node's tasks move, and their addresses are released.
func (s *swarmSteps) drain(t *testing.T) {
	s.n2.MustDocker(t, "service", "scale", "--detach", "janus3=4")
	waitTasks(t, s.hs, "janus3", 4)
	s.n2.MustDocker(t, "node", "update", "--availability", "drain", s.n3.Name)
	ts := waitTasks(t, s.hs, "janus3", 4, s.n3)
	checkTasks(t, s.hs, ts, subnet25, gw25)
	agrees(t, s.hs, s.n2, subnet25, "janus3") // the drained tasks' addresses are released
	s.n2.MustDocker(t, "node", "update", "--availability", "active", s.n3.Name)
	agrees(t, s.hs, s.n2, subnet25, "janus3")
}

// dockerdRestart: a manager's dockerd restarts.
func (s *swarmSteps) dockerdRestart(t *testing.T) {
	before := waitTasks(t, s.hs, "janus3", 4)
	s.n1.Stop()
	// Docker refuses live-restore in swarm mode (docs/swarm.md): a
	// node's tasks stop with its dockerd and come back as new tasks,
	// with addresses no running task holds.
	switch err := s.n1.TryStart("--live-restore"); {
	case err == nil:
		t.Errorf("dockerd --live-restore on a swarm node started, want Docker's refusal")
		s.n1.Stop()
	case !strings.Contains(err.Error(), "incompatible with swarm mode"):
		t.Errorf("dockerd --live-restore on a swarm node: %v, want Docker's refusal", err)
	}
	s.n1.Start(t)
	nodeReady(t, s.n2, s.n1)
	after := waitTasks(t, s.hs, "janus3", 4)
	checkTasks(t, s.hs, after, subnet25, gw25)
	agrees(t, s.hs, s.n2, subnet25, "janus3")
	t.Logf("tasks before the restart: %v; after: %v", addrList(before), addrList(after))
}

// networkRemoved: `docker network rm` leaves no macvlan and no address
// on any node.
func (s *swarmSteps) networkRemoved(t *testing.T) {
	removeAll(t, s.hs, s.n2, "janus3", "media3")
	agrees(t, s.hs, s.n2, subnet25) // no macvlan, no address left on any host
}

// nodeLeavesForGood: n3 leaves the swarm and is removed: its tasks move
// and their addresses come back to the pool.
func (s *swarmSteps) nodeLeavesForGood(t *testing.T) {
	swarmNetwork(t, s.n2, "media4", subnet24, gw24)
	service(t, s.n2, "janus4", "media4", 3)
	waitTasks(t, s.hs, "janus4", 3)
	s.n2.MustDocker(t, "node", "demote", s.n3.Name)
	s.n3.MustDocker(t, "swarm", "leave")
	err := waitFor(time.Minute, func() error {
		out, _ := s.n2.Docker("node", "ls", "--format", "{{.Hostname}} {{.Status}}")
		if !strings.Contains(out, s.n3.Name+" Down") {
			return fmt.Errorf("nodes: %s: %w", out, errNotYet)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	s.n2.MustDocker(t, "node", "rm", s.n3.Name)
	ts := waitTasks(t, s.hs, "janus4", 3, s.n3)
	checkTasks(t, s.hs, ts, subnet24, gw24)
	agrees(t, s.hs, s.n2, subnet24, "janus4") // the departed node's addresses are back in the pool
}

// scale scales svc to n tasks on leader, then checks them and medianet's
// agreement with the cluster.
func scale(t *testing.T, hs *dockertest.Hosts, leader *dockertest.Host, svc string, n int, subnet netip.Prefix, gw netip.Addr) {
	t.Helper()
	leader.MustDocker(t, "service", "scale", "--detach", svc+"="+strconv.Itoa(n))
	checkTasks(t, hs, waitTasks(t, hs, svc, n), subnet, gw)
	agrees(t, hs, leader, subnet, svc)
}

// removeAll removes service svc and network net on leader, and waits
// until no host runs a task of svc.
func removeAll(t *testing.T, hs *dockertest.Hosts, leader *dockertest.Host, svc, net string) {
	t.Helper()
	leader.MustDocker(t, "service", "rm", svc)
	err := waitFor(time.Minute, func() error {
		ts, err := tasks(hs, svc)
		if err == nil && len(ts) > 0 {
			err = fmt.Errorf("%d tasks of %s left: %w", len(ts), svc, errNotYet)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	err = waitFor(time.Minute, func() error { _, err := leader.Docker("network", "rm", net); return err })
	if err != nil {
		t.Fatal(err)
	}
}

// nodeReady waits until leader sees h Ready and, for a manager,
// reachable.
func nodeReady(t *testing.T, leader, h *dockertest.Host) {
	t.Helper()
	err := waitFor(2*time.Minute, func() error {
		out, err := leader.Docker("node", "ls", "--format", "{{.Hostname}} {{.Status}} {{.ManagerStatus}}")
		if err != nil {
			return err
		}
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) >= 2 && f[0] == h.Name && f[1] == "Ready" && (len(f) == 2 || f[2] != "Unreachable") {
				return nil
			}
		}
		return fmt.Errorf("%s not ready: %s: %w", h.Name, out, errNotYet)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func addrList(ts []task) []string {
	var out []string
	for _, tk := range ts {
		out = append(out, tk.host.Name+":"+tk.addr.Addr().String())
	}
	return out
}
