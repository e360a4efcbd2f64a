package dockerplugin

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// addrsOf lists the addresses held in h's IPAM store, sorted.
func addrsOf(t *testing.T, h *harness) []string {
	t.Helper()
	var out []string
	for _, a := range allocations(t, h) {
		for _, ip := range a.IPs {
			out = append(out, ip.String())
		}
	}
	slices.Sort(out)
	return out
}

func poolRecord(t *testing.T, h *harness, id string) (pool, bool) {
	t.Helper()
	p, ok, err := h.d.loadPool(id)
	if err != nil {
		t.Fatal(err)
	}
	return p, ok
}

// leaderWithTasks is a manager's medianet that allocated Swarm network
// "n1" (10.238.0.0/24, aux 10.238.0.10) and three tasks' addresses.
func leaderWithTasks(t *testing.T) (*harness, *fakeEngine, *clock, string) {
	t.Helper()
	h := newHarness(t, Config{Scope: ScopeGlobal, Node: "mgr-a"}, newFakeLinks("lan0"))
	eng := newFakeEngine("n1")
	clk := h.withEngine(eng)
	pid, err := h.globalPool("10.238.0.0/24", "10.238.0.254")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.taskAddr(pid, "10.238.0.10"); err != nil { // the aux address
		t.Fatal(err)
	}
	if err := h.allocate("n1", "10.238.0.0/24", "10.238.0.10"); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := h.taskAddr(pid, ""); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := addrsOf(t, h), []string{"10.238.0.1", "10.238.0.10", "10.238.0.2", "10.238.0.3"}; !slices.Equal(got, want) {
		t.Fatalf("addresses = %v, want %v", got, want)
	}
	return h, eng, clk, pid
}

// TestFormerLeaderOverlappingSubnet: a manager keeps the pool of a Swarm
// network that another leader removed. When it leads again, a network
// with an overlapping subnet is accepted and the stale pool goes, with
// its addresses; the engine is not asked meanwhile.
func TestFormerLeaderOverlappingSubnet(t *testing.T) {
	h, eng, clk, old := leaderWithTasks(t)
	h.termChange(eng, clk) // n1 removed while mgr-a was not the leader
	eng.err = errors.New("the engine must not be asked from inside its own call")
	pid, err := h.globalPool("10.238.0.0/25", "10.238.0.126")
	if err != nil {
		t.Fatalf("overlapping subnet after the old network's removal: %v", err)
	}
	if err := h.allocate("n2", "10.238.0.0/25"); err != nil {
		t.Fatal(err)
	}
	if _, ok := poolRecord(t, h, old); ok {
		t.Errorf("stale pool %s still recorded", old)
	}
	if got := addrsOf(t, h); len(got) != 0 {
		t.Errorf("addresses after the stale pool went = %v, want none", got)
	}
	if a, err := h.taskAddr(pid, "10.238.0.2"); err != nil {
		t.Errorf("new network's task asking for 10.238.0.2, the stale pool's: %q, %v", a, err)
	}
	if n := eng.callCount(); n != 0 {
		t.Errorf("engine listed %d times from inside Docker's calls", n)
	}
}

// TestFormerLeaderSameSubnet: as above, a network with the same subnet
// gets a clean pool.
func TestFormerLeaderSameSubnet(t *testing.T) {
	h, eng, clk, old := leaderWithTasks(t)
	h.termChange(eng, clk) // n1 removed while mgr-a was not the leader
	pid, err := h.globalPool("10.238.0.0/24", "10.238.0.254")
	if err != nil {
		t.Fatal(err)
	}
	if pid == old {
		t.Errorf("n2's pool is n1's obsolete pool %s", old)
	}
	if _, err := h.taskAddr(pid, "10.238.0.20"); err != nil { // n2's aux address
		t.Fatal(err)
	}
	if err := h.allocate("n2", "10.238.0.0/24", "10.238.0.20"); err != nil {
		t.Fatalf("AllocateNetwork of n2: %v", err)
	}
	if got, want := addrsOf(t, h), []string{"10.238.0.20"}; !slices.Equal(got, want) {
		t.Errorf("addresses once n2 has the subnet = %v, want only its aux address %v", got, want)
	}
	p, _ := poolRecord(t, h, pid)
	if p.Refs != 1 || !slices.Equal(p.Networks, []string{"n2"}) {
		t.Errorf("n2's pool: refs %d networks %v, want 1 and [n2]", p.Refs, p.Networks)
	}
	if got := countRecords(t, h, bucketPools); got != 1 {
		t.Errorf("pools = %d, want 1", got)
	}
	for _, a := range []string{"10.238.0.1", "10.238.0.2", "10.238.0.3"} {
		if _, err := h.taskAddr(pid, a); err != nil {
			t.Errorf("n2's task asking for %s, n1's former task's address: %v", a, err)
		}
	}
}

// TestFormerLeaderNetworkExists: while the first network exists, an
// overlapping subnet and the same subnet are refused, naming the network
// and the node: on the leader that allocated it, and on a new leader
// whose allocator allocated it again.
func TestFormerLeaderNetworkExists(t *testing.T) {
	for _, restored := range []bool{false, true} {
		name := map[bool]string{false: "same term", true: "restored by a new term"}[restored]
		t.Run(name, func(t *testing.T) {
			h, eng, clk, pid := leaderWithTasks(t)
			if restored {
				h.termChange(eng, clk)
				pid = restore(t, h, []string{"10.238.0.2", "10.238.0.3"})
			}
			clk.later()
			_, err := h.globalPool("10.238.0.0/25", "10.238.0.126")
			for _, want := range []string{"overlaps 10.238.0.0/24", "n1", "mgr-a"} {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("overlapping subnet while n1 exists: err = %v, want one naming %q", err, want)
				}
			}
			same, err := h.globalPool("10.238.0.0/24", "10.238.0.254")
			if err != nil || same != pid {
				t.Fatalf("the same subnet again = %s, %v; want n1's pool %s shared until AllocateNetwork", same, err, pid)
			}
			err = h.allocate("n2", "10.238.0.0/24")
			if err == nil || !strings.Contains(err.Error(), "n1") || !strings.Contains(err.Error(), "mgr-a") {
				t.Errorf("second Swarm network on n1's subnet: err = %v, want one naming n1 and mgr-a", err)
			}
			if got := len(addrsOf(t, h)); got != map[bool]int{false: 4, true: 3}[restored] {
				t.Errorf("addresses after the refusals = %v, want n1's", addrsOf(t, h))
			}
		})
	}
}

// restore is a new leader's allocator restoring n1 (10.238.0.0/24, aux
// 10.238.0.10) and its live tasks' addresses; it returns n1's pool.
func restore(t *testing.T, h *harness, live []string) string {
	t.Helper()
	pid, err := h.globalPool("10.238.0.0/24", "10.238.0.254")
	if err != nil {
		t.Fatalf("restore RequestPool: %v", err)
	}
	if _, err := h.taskAddr(pid, "10.238.0.10"); err != nil {
		t.Fatal(err)
	}
	if err := h.allocate("n1", "10.238.0.0/24", "10.238.0.10"); err != nil {
		t.Fatal(err)
	}
	for _, a := range live {
		if _, err := h.taskAddr(pid, a); err != nil {
			t.Fatalf("restore of live address %s: %v", a, err)
		}
	}
	return pid
}

// TestFormerLeaderNeverSeenFollowing: a manager that was never seen not
// leading since it requested the pool (the engine did not answer) cannot
// tell its network gone: nothing is dropped, and the error says why.
func TestFormerLeaderNeverSeenFollowing(t *testing.T) {
	h, eng, clk, _ := leaderWithTasks(t)
	eng.set()
	eng.err = errors.New("connection refused")
	clk.later()
	if err := h.d.checkLeader(t.Context()); err == nil {
		t.Fatal("checkLeader with the engine down: no error")
	}
	_, err := h.globalPool("10.238.0.0/25", "10.238.0.126")
	if err == nil || !strings.Contains(err.Error(), "overlaps 10.238.0.0/24") || !strings.Contains(err.Error(), "not seen") {
		t.Errorf("overlap: err = %v, want one saying the node was not seen not leading", err)
	}
	if _, err := h.d.Reconcile(t.Context()); err == nil {
		t.Errorf("Reconcile with the engine down: no error")
	}
	if got := addrsOf(t, h); len(got) != 4 {
		t.Errorf("addresses = %v, want n1's four kept", got)
	}
	eng.err = nil
	if _, err := h.d.Reconcile(t.Context()); err != nil || countRecords(t, h, bucketPools) != 1 {
		t.Errorf("Reconcile dropped the global pool (%v)", err)
	}
}

// TestNewLeaderRestores: a manager leading again sees swarmkit's
// allocator restore network n1 (pool, gateway, aux address,
// AllocateNetwork, then the live tasks' addresses). The addresses of tasks
// that ended under another leader are given back; the pool's reference
// count stays one, so the network's removal frees everything. Whether
// the manager was seen not leading (a clean pool) or not (the pool kept,
// its addresses given back), the result is the same.
func TestNewLeaderRestores(t *testing.T) {
	for _, seen := range []bool{false, true} {
		t.Run(map[bool]string{false: "not seen following", true: "seen following"}[seen], func(t *testing.T) {
			h, eng, clk, pid := leaderWithTasks(t)
			// The manager's own host had a task of n1, and removed its local
			// instance of n1 when it stopped: the global binding stays.
			local := createLocal(t, h, "n1", "10.238.0.0/24", "10.238.0.254")
			h.must("IpamDriver.ReleasePool", releasePoolRequest{PoolID: local}, nil)
			h.must("NetworkDriver.DeleteNetwork", networkIDRequest{NetworkID: "n1"}, nil)
			if seen {
				h.termChange(eng, clk)
			}
			again := restore(t, h, []string{"10.238.0.2", "10.238.0.3"}) // .1 ended meanwhile
			if (again == pid) == seen {
				t.Errorf("restored pool %s, old %s: want a clean pool exactly when the manager was seen following (%t)", again, pid, seen)
			}
			if got, want := addrsOf(t, h), []string{"10.238.0.10", "10.238.0.2", "10.238.0.3"}; !slices.Equal(got, want) {
				t.Errorf("addresses after restore = %v, want %v", got, want)
			}
			if _, err := h.taskAddr(again, "10.238.0.3"); err == nil {
				t.Errorf("a second task got 10.238.0.3, held by a live task")
			}
			h.must("NetworkDriver.FreeNetwork", networkIDRequest{NetworkID: "n1"}, nil)
			for _, a := range []string{"10.238.0.2", "10.238.0.3", "10.238.0.10", "10.238.0.254"} {
				h.must("IpamDriver.ReleaseAddress", releaseAddressRequest{PoolID: again, Address: a}, nil)
			}
			h.must("IpamDriver.ReleasePool", releasePoolRequest{PoolID: again}, nil)
			if got := countRecords(t, h, bucketPools); got != 0 {
				t.Errorf("pools left after the network's removal: %d", got)
			}
			if got := addrsOf(t, h); len(got) != 0 {
				t.Errorf("addresses after removal = %v, want none", got)
			}
		})
	}
}

// createLocal is a node's RequestPool, gateway and CreateNetwork of
// network nid on subnet, as for a Swarm task's network.
func createLocal(t *testing.T, h *harness, nid, subnet, gateway string) string {
	t.Helper()
	pid := h.pool(subnet, "", gateway, nil)
	h.must("NetworkDriver.CreateNetwork", createNetworkRequest{NetworkID: nid, Options: generic(map[string]string{"parent": "lan0"}),
		IPv4Data: []ipamData{{AddressSpace: LocalAddressSpace, Pool: subnet, Gateway: gateway + "/24"}}}, nil)
	return pid
}

// endpointOn gives network nid an endpoint with the address want (a
// task's address, chosen by the manager).
func endpointOn(t *testing.T, h *harness, pid, nid, eid, want string) {
	t.Helper()
	a := h.mustAddr(pid, want)
	h.must("NetworkDriver.CreateEndpoint", createEndpointRequest{NetworkID: nid, EndpointID: eid, Interface: &endpointInterface{Address: a}}, nil)
	h.must("NetworkDriver.Join", joinRequest{NetworkID: nid, EndpointID: eid}, nil)
}

// TestNetworkCreatedAgain: a dockerd killed with SIGKILL forgets a Swarm
// task's network; on restart it requests the pool and creates the network
// again. The dead tasks' addresses are given back (the manager may hand
// them to new tasks on this node), and one ReleasePool frees the pool.
func TestNetworkCreatedAgain(t *testing.T) {
	links := newFakeLinks("lan0")
	h := newHarness(t, Config{Scope: ScopeGlobal, Node: "node-b"}, links)
	pid := createLocal(t, h, "n1", "10.238.0.0/24", "10.238.0.254")
	endpointOn(t, h, pid, "n1", "ep1aaaaaaaaaaaa", "10.238.0.2")
	endpointOn(t, h, pid, "n1", "ep2aaaaaaaaaaaa", "10.238.0.5")

	h.restart(Config{Scope: ScopeGlobal, Node: "node-b"}) // the plugin restarts with dockerd
	if again := createLocal(t, h, "n1", "10.238.0.0/24", "10.238.0.254"); again != pid {
		t.Fatalf("pool after restart = %s, want %s", again, pid)
	}
	if got := addrsOf(t, h); len(got) != 0 {
		t.Errorf("addresses of dead tasks after the network was created again = %v, want none", got)
	}
	if got := countRecords(t, h, bucketEndpoints); got != 0 {
		t.Errorf("endpoint records after the network was created again = %d, want 0", got)
	}
	endpointOn(t, h, pid, "n1", "ep3aaaaaaaaaaaa", "10.238.0.2") // the manager reuses a dead task's address
	h.must("NetworkDriver.Leave", endpointRequest{NetworkID: "n1", EndpointID: "ep3aaaaaaaaaaaa"}, nil)
	h.must("NetworkDriver.DeleteEndpoint", endpointRequest{NetworkID: "n1", EndpointID: "ep3aaaaaaaaaaaa"}, nil)
	h.must("IpamDriver.ReleaseAddress", releaseAddressRequest{PoolID: pid, Address: "10.238.0.2"}, nil)
	h.must("IpamDriver.ReleasePool", releasePoolRequest{PoolID: pid}, nil)
	h.must("NetworkDriver.DeleteNetwork", networkIDRequest{NetworkID: "n1"}, nil)
	if got := countRecords(t, h, bucketPools); got != 0 {
		t.Errorf("pools after the network's removal = %d, want 0 (reference count inflated)", got)
	}
	if got := links.names(); len(got) != 0 {
		t.Errorf("links left = %v", got)
	}
}

// TestReconcile: Reconcile drops the pools and networks the engine no
// longer lists (and the endpoints and links of those networks), and the
// endpoints it no longer lists on a live network; keeps young and listed
// ones, unbinds a gone network from a shared pool, and drops nothing when
// the engine cannot be asked.
func TestReconcile(t *testing.T) {
	links := newFakeLinks("lan0")
	h := newHarness(t, Config{Node: "node-a"}, links)
	eng := newFakeEngine("live", "shared-live")
	clk := h.withEngine(eng)
	live := createLocal(t, h, "live", "10.70.1.0/24", "10.70.1.254")
	gone := createLocal(t, h, "gone", "10.70.2.0/24", "10.70.2.254")
	endpointOn(t, h, gone, "gone", "epgoneaaaaaaaaa", "")
	shared := createLocal(t, h, "shared-live", "10.70.3.0/24", "10.70.3.254")
	createLocal(t, h, "shared-gone", "10.70.3.0/24", "10.70.3.254")
	endpointOn(t, h, shared, "shared-gone", "epsharedaaaaaaa", "10.70.3.7")
	endpointOn(t, h, shared, "shared-live", "epliveaaaaaaaaa", "10.70.3.8")
	endpointOn(t, h, live, "live", "epdeadaaaaaaaaa", "10.70.1.9") // its container died with a killed dockerd
	eng.setEndpoints("shared-live", "epliveaaaaaaaaa")
	eng.setEndpoints("live")
	orphan := h.pool("10.70.4.0/24", "", "", nil) // never bound, subnet unlisted
	byIPAMOnly := h.pool("10.70.5.0/24", "", "", nil)
	eng.subnets[netip.MustParsePrefix("10.70.5.0/24")] = true // another driver's network uses medianet's IPAM

	if res, err := h.d.Reconcile(t.Context()); err != nil || len(res.Pools)+len(res.Networks)+len(res.Unbound)+len(res.Endpoints) != 0 {
		t.Errorf("Reconcile within the grace = %+v, %v; want nothing dropped", res, err)
	}
	clk.later()
	eng.err = errors.New("dockerd starting")
	if _, err := h.d.Reconcile(t.Context()); err == nil || countRecords(t, h, bucketPools) != 5 {
		t.Errorf("Reconcile with the engine down: err %v, %d pools; want an error and all 5 kept", err, countRecords(t, h, bucketPools))
	}
	eng.err = nil
	res, err := h.d.Reconcile(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(res.Pools)
	slices.Sort(res.Networks)
	if want := []string{gone, orphan}; !slices.Equal(res.Pools, want) {
		t.Errorf("pools dropped = %v, want %v", res.Pools, want)
	}
	if want := []string{"gone", "shared-gone"}; !slices.Equal(res.Networks, want) {
		t.Errorf("networks dropped = %v, want %v", res.Networks, want)
	}
	if want := []string{"shared-gone@" + shared}; !slices.Equal(res.Unbound, want) {
		t.Errorf("unbound = %v, want %v", res.Unbound, want)
	}
	if want := []string{"epdeadaaaaaaaaa"}; !slices.Equal(res.Endpoints, want) {
		t.Errorf("endpoints dropped = %v, want %v", res.Endpoints, want)
	}
	for _, id := range []string{live, shared, byIPAMOnly} {
		if _, ok := poolRecord(t, h, id); !ok {
			t.Errorf("pool %s in use was dropped", id)
		}
	}
	if got, want := addrsOf(t, h), []string{"10.70.3.8"}; !slices.Equal(got, want) {
		t.Errorf("addresses left = %v, want only the live endpoint's %v", got, want)
	}
	if got, want := links.names(), []string{linkName("epliveaaaaaaaaa")}; !slices.Equal(got, want) {
		t.Errorf("links left = %v, want %v", got, want)
	}
}

// TestRequestPoolNeverAsksEngine: RequestPool judges an overlapping
// local pool by the reconcile loop's last view, never by asking the
// engine itself (Docker is inside its own call): without a view fresh
// enough the overlap is refused and the loop is asked for one; once it
// has one that lists no network of the old pool, the pool goes.
func TestRequestPoolNeverAsksEngine(t *testing.T) {
	h := newHarness(t, Config{Node: "node-a"}, newFakeLinks("lan0"))
	eng := newFakeEngine()
	clk := h.withEngine(eng)
	createLocal(t, h, "old", "10.71.0.0/24", "10.71.0.254")
	clk.later()
	_, err := h.d.ipam().RequestPool(&requestPoolRequest{AddressSpace: LocalAddressSpace, Pool: "10.71.0.0/25"})
	if err == nil || !strings.Contains(err.Error(), "has not been asked yet") {
		t.Errorf("overlap without a view: err = %v, want a refusal saying Docker was not asked yet", err)
	}
	if n := eng.callCount(); n != 0 {
		t.Errorf("RequestPool asked the engine %d times", n)
	}
	select {
	case <-h.d.poke:
	default:
		t.Errorf("RequestPool did not ask the reconcile loop for a view")
	}
	// A view asked for before the pool was old enough cannot tell.
	h.d.mu.Lock()
	h.d.recordView(engineView{ids: map[string]bool{}, asked: clk.get().Add(-2*staleGrace + staleGrace/2)})
	h.d.mu.Unlock()
	if _, err := h.d.ipam().RequestPool(&requestPoolRequest{AddressSpace: LocalAddressSpace, Pool: "10.71.0.0/25"}); err == nil {
		t.Errorf("overlap judged on a view asked too soon after the pool: accepted")
	}
	h.d.mu.Lock()
	h.d.recordView(engineView{ids: map[string]bool{}, asked: clk.get()})
	h.d.mu.Unlock()
	if _, err := h.d.ipam().RequestPool(&requestPoolRequest{AddressSpace: LocalAddressSpace, Pool: "10.71.0.0/25"}); err != nil {
		t.Errorf("overlap after a view without the old network: %v", err)
	}
	if n := eng.callCount(); n != 0 {
		t.Errorf("RequestPool asked the engine %d times", n)
	}
}

// TestManagerEndpoints: on a Swarm manager a network is bound both to the
// cluster's global pool and to the host's own pool, of one subnet. An
// endpoint Docker no longer lists (its container died with a killed
// dockerd) gives its address back to the host's pool, never the global
// one.
func TestManagerEndpoints(t *testing.T) {
	h, eng, clk, gpid := leaderWithTasks(t)
	local := createLocal(t, h, "n1", "10.238.0.0/24", "10.238.0.254")
	endpointOn(t, h, local, "n1", "epdeadaaaaaaaaa", "10.238.0.2")
	eng.setEndpoints("n1") // the host lists no endpoint of n1 any more
	clk.later()
	res, err := h.d.Reconcile(t.Context())
	if err != nil || !slices.Equal(res.Endpoints, []string{"epdeadaaaaaaaaa"}) {
		t.Fatalf("Reconcile = %+v, %v; want the dead endpoint dropped", res, err)
	}
	var global, host []string
	for _, a := range allocations(t, h) {
		if strings.HasPrefix(a.Network, GlobalAddressSpace) {
			global = append(global, a.IPs[0].String())
		} else {
			host = append(host, a.IPs[0].String())
		}
	}
	slices.Sort(global)
	if want := []string{"10.238.0.1", "10.238.0.10", "10.238.0.2", "10.238.0.3"}; !slices.Equal(global, want) {
		t.Errorf("global pool %s = %v, want %v untouched", gpid, global, want)
	}
	if len(host) != 0 {
		t.Errorf("host pool = %v, want the dead endpoint's address given back", host)
	}
}

// TestDeleteNetworkFreesForgottenEndpoints: a dockerd killed with SIGKILL
// forgot network n1's endpoint (no DeleteEndpoint, no ReleaseAddress);
// its pool's count was raised again on restart, so the ReleasePool after
// DeleteNetwork leaves the pool, and a network of the same subnet reuses
// it (found by TestSwarm in a CI rehearsal: the node's pool kept a dead
// task's address). DeleteNetwork gives the forgotten endpoint's address
// back with its link.
func TestDeleteNetworkFreesForgottenEndpoints(t *testing.T) {
	h := newHarness(t, Config{}, newFakeLinks("lan0"))
	pid := createLocal(t, h, "n1", "10.71.0.0/24", "10.71.0.254")
	endpointOn(t, h, pid, "n1", "e1", "10.71.0.7")
	// dockerd restarts and asks for the pool again: its count is two.
	if again := h.pool("10.71.0.0/24", "", "10.71.0.254", nil); again != pid {
		t.Fatalf("pool requested again = %s, want %s", again, pid)
	}
	h.must("NetworkDriver.DeleteNetwork", networkIDRequest{NetworkID: "n1"}, nil)
	h.must("IpamDriver.ReleasePool", releasePoolRequest{PoolID: pid}, nil)
	if got := addrsOf(t, h); len(got) != 0 {
		t.Errorf("addresses after the network's removal = %v, want none (e1's 10.71.0.7 forgotten by Docker)", got)
	}
	if got := h.links.names(); len(got) != 0 {
		t.Errorf("links left = %v, want none", got)
	}
	// The same subnet again, on the surviving pool: 10.71.0.7 is free.
	createLocal(t, h, "n2", "10.71.0.0/24", "10.71.0.254")
	if _, err := h.addr(pid, "10.71.0.7"); err != nil {
		t.Errorf("a new network's endpoint asking for 10.71.0.7: %v", err)
	}
}
