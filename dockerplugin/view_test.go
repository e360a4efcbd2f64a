package dockerplugin

import (
	"slices"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/medianet/medianet/macvlan"
)

func macvlanSpec(parent string) macvlan.Spec { return macvlan.Spec{Master: parent} }

// TestSlowEngineView: the engine answers slowly (the listing, then each
// network's endpoints), and while it does Docker creates a network, its
// pool and an endpoint on a listed network. The view cannot hold them:
// it is judged against the time it was asked for, so nothing created
// after that is dropped, however late the answer arrives.
func TestSlowEngineView(t *testing.T) {
	links := newFakeLinks("lan0")
	h := newHarness(t, Config{Node: "node-a"}, links)
	eng := newFakeEngine("old")
	clk := h.withEngine(eng)
	old := createLocal(t, h, "old", "10.73.1.0/24", "10.73.1.254")
	endpointOn(t, h, old, "old", "epoldaaaaaaaaaa", "10.73.1.2")
	eng.setEndpoints("old", "epoldaaaaaaaaaa")
	clk.later()
	var fresh string
	eng.during = func() {
		fresh = createLocal(t, h, "new", "10.73.2.0/24", "10.73.2.254")
		endpointOn(t, h, fresh, "new", "epnewaaaaaaaaaa", "10.73.2.2")
		endpointOn(t, h, old, "old", "eplateaaaaaaaaa", "10.73.1.3")
		clk.later() // the answer arrives after a whole grace period
	}
	res, err := h.d.Reconcile(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Pools)+len(res.Networks)+len(res.Unbound)+len(res.Endpoints) != 0 {
		t.Errorf("Reconcile on a view asked before they were created dropped %+v; want nothing", res)
	}
	if _, ok := poolRecord(t, h, fresh); !ok {
		t.Errorf("pool %s, requested after the engine was asked, was dropped", fresh)
	}
	if got, want := addrsOf(t, h), []string{"10.73.1.2", "10.73.1.3", "10.73.2.2"}; !slices.Equal(got, want) {
		t.Errorf("addresses = %v, want %v kept", got, want)
	}
	if got := len(links.names()); got != 3 {
		t.Errorf("links = %v, want the three endpoints' links", links.names())
	}
	// The next view, asked once they exist, lists them: still nothing goes.
	eng.during = nil
	eng.addNet("new", "")
	eng.setEndpoints("old", "epoldaaaaaaaaaa", "eplateaaaaaaaaa")
	eng.setEndpoints("new", "epnewaaaaaaaaaa")
	clk.later()
	if res, err := h.d.Reconcile(t.Context()); err != nil || len(res.Pools)+len(res.Networks)+len(res.Unbound)+len(res.Endpoints) != 0 {
		t.Errorf("Reconcile on a view listing everything = %+v, %v; want nothing dropped", res, err)
	}
}

// TestForgottenEndpointLinks: an endpoint medianet no longer records
// (forgotten while Docker still had it) keeps no link: DeleteEndpoint
// removes the link its ID names, and Reconcile removes such links left in
// the host namespace, but never a recorded endpoint's link or a link not
// named as Join names them.
func TestForgottenEndpointLinks(t *testing.T) {
	links := newFakeLinks("lan0")
	h := newHarness(t, Config{Node: "node-a"}, links)
	eng := newFakeEngine("n1")
	h.withEngine(eng)
	pid := createLocal(t, h, "n1", "10.74.0.0/24", "10.74.0.254")
	const live, forgotten, orphan = "0123456789abcdef0123", "fedcba98765432100000", "aaaaaaaaaaaabbbbbbbb"
	for _, id := range []string{live, forgotten, orphan} {
		endpointOn(t, h, pid, "n1", id, "")
	}
	_ = links.Create(macvlanSpec("lan0"), "mnshim0")     // not an endpoint's
	_ = links.Create(macvlanSpec("lan0"), "mns0badcafe") // a CNI host shim
	for _, id := range []string{forgotten, orphan} {
		if err := h.d.st.db.Update(func(tx *bolt.Tx) error { return del(tx, bucketEndpoints, id) }); err != nil {
			t.Fatal(err)
		}
	}
	h.must("NetworkDriver.Leave", endpointRequest{NetworkID: "n1", EndpointID: forgotten}, nil)
	_ = links.Create(macvlanSpec("lan0"), linkName(forgotten)) // Docker moves it back out of the container
	h.must("NetworkDriver.DeleteEndpoint", endpointRequest{NetworkID: "n1", EndpointID: forgotten}, nil)
	if slices.Contains(links.names(), linkName(forgotten)) {
		t.Errorf("DeleteEndpoint of a forgotten endpoint left its link %s", linkName(forgotten))
	}
	eng.setEndpoints("n1", live, orphan)
	res, err := h.d.Reconcile(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{linkName(orphan)}; !slices.Equal(res.Links, want) {
		t.Errorf("links removed = %v, want %v", res.Links, want)
	}
	if got, want := links.names(), []string{linkName(live), "mns0badcafe", "mnshim0"}; !slices.Equal(got, want) {
		t.Errorf("links left = %v, want %v", got, want)
	}
}

// TestNotLeaderPersisted: a node is taken for a follower once seen not
// leading twice in a row, since the first time: then it drops the Swarm
// pools it requested before, and the time survives a restart.
func TestNotLeaderPersisted(t *testing.T) {
	h, eng, clk, pid := leaderWithTasks(t)
	clk.later()
	h.leads(eng, false)
	if _, ok := poolRecord(t, h, pid); !ok || !h.d.notLeader.IsZero() {
		t.Fatalf("seen not leading once: pool kept %t, notLeader %v; want kept, unset", ok, h.d.notLeader)
	}
	h.leads(eng, true) // the streak is broken
	clk.later()
	h.leads(eng, false)
	if !h.d.notLeader.IsZero() {
		t.Fatalf("notLeader set after a broken streak")
	}
	first := clk.get()
	clk.later()
	h.leads(eng, false)
	if !h.d.notLeader.Equal(first) {
		t.Errorf("notLeader = %v, want the first of the two answers %v", h.d.notLeader, first)
	}
	if _, ok := poolRecord(t, h, pid); ok {
		t.Errorf("follower kept its former Swarm pool %s", pid)
	}
	if got := addrsOf(t, h); len(got) != 0 {
		t.Errorf("follower's addresses = %v, want none", got)
	}
	h.restart(Config{Scope: ScopeGlobal, Node: "mgr-a"})
	if err := h.d.loadNotLeader(); err != nil {
		t.Fatal(err)
	}
	if !h.d.notLeader.Equal(first) {
		t.Errorf("notLeader after restart = %v, want %v", h.d.notLeader, first)
	}
}

// TestViewWrongButLinkAlive: a view can be wrong (a manager's engine
// without a Swarm leader may leave a Swarm network out); an endpoint
// whose link is in a container's namespace is kept, with its address,
// network and pool, whatever the view says.
func TestViewWrongButLinkAlive(t *testing.T) {
	links := newFakeLinks("lan0")
	h := newHarness(t, Config{Node: "node-a"}, links)
	eng := newFakeEngine("n2")
	clk := h.withEngine(eng)
	p1 := createLocal(t, h, "n1", "10.75.1.0/24", "10.75.1.254")
	endpointOn(t, h, p1, "n1", "0123456789abcdef0123", "10.75.1.2") // n1 left out of the view
	p2 := createLocal(t, h, "n2", "10.75.2.0/24", "10.75.2.254")
	endpointOn(t, h, p2, "n2", "fedcba98765432100000", "10.75.2.2") // left out of n2's endpoints
	eng.setEndpoints("n2")
	links.inContainers = map[string]bool{"02:42:0a:4b:01:02": true, "02:42:0a:4b:02:02": true}
	clk.later()
	res, err := h.d.Reconcile(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Pools)+len(res.Networks)+len(res.Unbound)+len(res.Endpoints) != 0 || len(res.Alive) != 2 {
		t.Errorf("Reconcile = %+v; want nothing dropped, both endpoints kept alive", res)
	}
	if got, want := addrsOf(t, h), []string{"10.75.1.2", "10.75.2.2"}; !slices.Equal(got, want) {
		t.Errorf("addresses = %v, want %v", got, want)
	}
	links.inContainers = nil // the containers are gone
	res, err = h.d.Reconcile(t.Context())
	if err != nil || len(res.Networks) != 1 || len(res.Endpoints) != 1 || len(res.Pools) != 1 {
		t.Errorf("Reconcile once the links are gone = %+v, %v; want n1 with its pool and n2's endpoint dropped", res, err)
	}
	if got := addrsOf(t, h); len(got) != 0 {
		t.Errorf("addresses = %v, want none", got)
	}
}

// TestNetworkLeftOutOfListing: a Swarm manager's engine lists no Swarm
// network while the Swarm has no leader (GET /networks), even one the
// host has with running tasks; asked by ID it has it, with its
// endpoints. Reconcile asks every network it has records of by ID, and
// drops nothing of it (on the old code: the network, its pool, and every
// endpoint with its address, while the tasks ran).
func TestNetworkLeftOutOfListing(t *testing.T) {
	links := newFakeLinks("lan0")
	h := newHarness(t, Config{Scope: ScopeGlobal, Node: "node-a"}, links)
	eng := newFakeEngine()
	clk := h.withEngine(eng)
	pid := createLocal(t, h, "sw1", "10.76.0.0/24", "10.76.0.254")
	endpointOn(t, h, pid, "sw1", "0123456789abcdef0123", "10.76.0.2")
	eng.hidden = map[string]bool{"sw1": true}
	eng.setEndpoints("sw1", "0123456789abcdef0123")
	clk.later()
	res, err := h.d.Reconcile(t.Context())
	if err != nil || len(res.Pools)+len(res.Networks)+len(res.Unbound)+len(res.Endpoints) != 0 {
		t.Errorf("Reconcile = %+v, %v; want nothing dropped", res, err)
	}
	if got, want := addrsOf(t, h), []string{"10.76.0.2"}; !slices.Equal(got, want) {
		t.Errorf("addresses = %v, want %v", got, want)
	}
	eng.hidden = nil // removed for good: gone by ID too
	if res, err := h.d.Reconcile(t.Context()); err != nil || len(res.Networks) != 1 || len(res.Pools) != 1 {
		t.Errorf("Reconcile once the network is gone = %+v, %v; want it dropped with its pool", res, err)
	}
}
