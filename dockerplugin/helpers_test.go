package dockerplugin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/medianet/medianet/ipam/etcdstore"
	"github.com/medianet/medianet/macvlan"
)

// fakeLinks is a linkMaker over a map, for tests without root.
type fakeLinks struct {
	mu      sync.Mutex
	parents map[string]bool         // existing parent links
	links   map[string]macvlan.Spec // macvlans by name
	vlans   map[string]bool         // vlan links created
	failOn  string                  // Create of this name fails
	// inContainers are the MACs of links in containers' namespaces.
	inContainers map[string]bool
}

func newFakeLinks(parents ...string) *fakeLinks {
	f := &fakeLinks{parents: map[string]bool{}, links: map[string]macvlan.Spec{}, vlans: map[string]bool{}}
	for _, p := range parents {
		f.parents[p] = true
	}
	return f
}

func (f *fakeLinks) ParentExists(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.parents[name] {
		return fmt.Errorf("%q: %w", name, ErrParentNotFound)
	}
	return nil
}

func (f *fakeLinks) EnsureVLAN(parent string, vlan int) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	name := macvlan.VLANName(parent, vlan)
	if f.parents[name] {
		return false, nil
	}
	f.parents[name], f.vlans[name] = true, true
	return true, nil
}

func (f *fakeLinks) DeleteVLAN(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.parents, name)
	delete(f.vlans, name)
	return nil
}

func (f *fakeLinks) Create(spec macvlan.Spec, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.parents[spec.Master] {
		return fmt.Errorf("master %q: %w", spec.Master, ErrParentNotFound)
	}
	if name == f.failOn {
		return errors.New("injected failure")
	}
	if _, ok := f.links[name]; ok {
		return macvlan.ErrLinkExists
	}
	f.links[name] = spec
	return nil
}

func (f *fakeLinks) Delete(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.links, name)
	return nil
}

func (f *fakeLinks) List() ([]string, error) { return f.names(), nil }

// Alive reports whether mac is in f.inContainers (links Docker moved into
// containers).
func (f *fakeLinks) Alive(mac net.HardwareAddr) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.inContainers[mac.String()], nil
}

func (f *fakeLinks) names() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for n := range f.links {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// harness is a Driver behind its HTTP handler, on a temporary data dir.
type harness struct {
	t     testing.TB
	dir   string
	links *fakeLinks
	d     *Driver
	srv   *httptest.Server
}

func newHarness(t testing.TB, cfg Config, links *fakeLinks) *harness {
	t.Helper()
	h := &harness{t: t, dir: t.TempDir(), links: links}
	h.start(cfg)
	t.Cleanup(h.stop)
	return h
}

func (h *harness) start(cfg Config) {
	h.t.Helper()
	cfg.DataDir = h.dir
	if cfg.Scope == "" {
		cfg.Scope = ScopeLocal
	}
	if cfg.Node == "" {
		cfg.Node = "node-a"
	}
	st, err := openState(h.dir)
	if err != nil {
		h.t.Fatal(err)
	}
	book := &ipamBook{dir: h.dir}
	if cfg.Etcd != nil {
		if book.etcd, err = etcdstore.New(*cfg.Etcd); err != nil {
			h.t.Fatal(err)
		}
	}
	h.d = newDriver(cfg, st, book, h.links)
	h.d.etcd = book.etcd
	h.srv = httptest.NewServer(Handler(h.d, nil))
}

func (h *harness) stop() {
	if h.srv != nil {
		h.srv.Close()
		h.d.Close()
		h.srv = nil
	}
}

// restart is medianetd stopping and starting on the same data dir.
func (h *harness) restart(cfg Config) {
	h.stop()
	h.start(cfg)
}

// call posts req to /method and decodes the answer into resp; a non-200
// answer is returned as an error holding Docker's "Err" text.
func (h *harness) call(method string, req, resp any) error {
	h.t.Helper()
	var body bytes.Buffer
	if req != nil {
		if err := json.NewEncoder(&body).Encode(req); err != nil {
			h.t.Fatal(err)
		}
	}
	r, err := http.Post(h.srv.URL+"/"+method, contentType, &body)
	if err != nil {
		h.t.Fatal(err)
	}
	defer r.Body.Close()
	if r.StatusCode != http.StatusOK {
		var e errorResponse
		if err := json.NewDecoder(r.Body).Decode(&e); err != nil {
			h.t.Fatalf("%s: status %d, undecodable error: %v", method, r.StatusCode, err)
		}
		return errors.New(e.Err)
	}
	if resp == nil {
		return nil
	}
	return json.NewDecoder(r.Body).Decode(resp)
}

func (h *harness) must(method string, req, resp any) {
	h.t.Helper()
	if err := h.call(method, req, resp); err != nil {
		h.t.Fatalf("%s: %v", method, err)
	}
}

// pool requests a pool and its gateway as Docker does at network create.
func (h *harness) pool(subnet, ipRange, gateway string, opts map[string]string) string {
	h.t.Helper()
	var p requestPoolResponse
	h.must("IpamDriver.RequestPool", requestPoolRequest{AddressSpace: LocalAddressSpace, Pool: subnet, SubPool: ipRange, Options: opts, V6: strings.Contains(subnet, ":")}, &p)
	h.must("IpamDriver.RequestAddress", requestAddressRequest{PoolID: p.PoolID, Address: gateway, Options: map[string]string{requestAddressType: gatewayRequest}}, nil)
	return p.PoolID
}

// addr requests a container address (with the MAC option, as Docker sends
// when RequiresMACAddress is set).
func (h *harness) addr(poolID, want string) (string, error) {
	var r requestAddressResponse
	err := h.call("IpamDriver.RequestAddress", requestAddressRequest{PoolID: poolID, Address: want, Options: map[string]string{macAddressOption: "02:42:00:00:00:01"}}, &r)
	return r.Address, err
}

func (h *harness) mustAddr(poolID, want string) string {
	h.t.Helper()
	a, err := h.addr(poolID, want)
	if err != nil {
		h.t.Fatalf("request address %q: %v", want, err)
	}
	return a
}

func generic(opts map[string]string) map[string]any {
	m := map[string]any{}
	for k, v := range opts {
		m[k] = v
	}
	return map[string]any{genericOptions: m}
}

// fakeEngine is an engine over a set of network IDs and subnets, for
// tests without dockerd; gate, when set, holds every call until closed.
type fakeEngine struct {
	mu      sync.Mutex
	ids     map[string]bool
	subnets map[netip.Prefix]bool
	eps     map[string]map[string]string // network -> endpoint -> container name
	err     error
	// leader: this node leads the Swarm (Leader's answer).
	leader bool
	// hidden are networks the listing leaves out but GET /networks/ID
	// finds (a Swarm manager without a leader).
	hidden map[string]bool
	calls  int
	gate   chan struct{}
	// during, when set, runs while Networks is being answered, after
	// the listing was taken: what Docker does while the engine is slow.
	during func()
}

func newFakeEngine(ids ...string) *fakeEngine {
	f := &fakeEngine{ids: map[string]bool{}, subnets: map[netip.Prefix]bool{}}
	for _, id := range ids {
		f.ids[id] = true
	}
	return f
}

func (f *fakeEngine) Networks(ctx context.Context) (engineView, error) {
	f.mu.Lock()
	gate := f.gate
	f.calls++
	f.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return engineView{}, ctx.Err()
		}
	}
	f.mu.Lock()
	if f.err != nil {
		f.mu.Unlock()
		return engineView{}, f.err
	}
	v := engineView{ids: maps.Clone(f.ids), subnets: maps.Clone(f.subnets)}
	during := f.during
	f.mu.Unlock()
	if during != nil {
		during()
	}
	return v, nil
}

// Leader answers f.leader, or f.err.
func (f *fakeEngine) Leader(context.Context) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.leader, f.err
}

// leads makes the engine say whether this node leads, and the driver ask.
func (h *harness) leads(f *fakeEngine, leader bool) {
	h.t.Helper()
	f.mu.Lock()
	f.leader = leader
	f.mu.Unlock()
	if err := h.d.checkLeader(context.Background()); err != nil {
		h.t.Fatal(err)
	}
}

// termChange is a failover away from this manager and back: it is seen
// not leading, and later leading again.
func (h *harness) termChange(f *fakeEngine, c *clock) {
	h.t.Helper()
	c.later()
	h.leads(f, false)
	c.later()
	h.leads(f, false) // seen following twice in a row
	c.later()
	h.leads(f, true)
}

// Endpoints lists the endpoints set for id with setEndpoints (none by
// default); the network is found when listed, or hidden.
func (f *fakeEngine) Endpoints(ctx context.Context, id string) (map[string]string, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, false, f.err
	}
	return maps.Clone(f.eps[id]), f.ids[id] || f.hidden[id], nil
}

func (f *fakeEngine) setEndpoints(id string, eps ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.eps == nil {
		f.eps = map[string]map[string]string{}
	}
	f.eps[id] = map[string]string{}
	for _, e := range eps {
		f.eps[id][e] = ""
	}
}

// nameEndpoint lists endpoint ep of network id with its container's name.
func (f *fakeEngine) nameEndpoint(id, ep, name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.eps == nil {
		f.eps = map[string]map[string]string{}
	}
	if f.eps[id] == nil {
		f.eps[id] = map[string]string{}
	}
	f.eps[id][ep] = name
}

// addNet makes the engine list network id of subnet too; with subnet ""
// it is listed without one, as dockerd lists a Swarm network whose pool
// is being allocated.
func (f *fakeEngine) addNet(id, subnet string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ids[id] = true
	if subnet != "" {
		f.subnets[netip.MustParsePrefix(subnet)] = true
	}
}

// set makes the engine list exactly ids.
func (f *fakeEngine) set(ids ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ids = map[string]bool{}
	for _, id := range ids {
		f.ids[id] = true
	}
}

// withEngine gives h's driver the engine e and a clock that runs
// staleGrace ahead when the test calls later().
func (h *harness) withEngine(e engine) *clock {
	c := &clock{now: time.Now()}
	h.d.eng, h.d.now = e, c.get
	return c
}

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) get() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// later moves the clock past staleGrace.
func (c *clock) later() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(2 * staleGrace)
}

// globalPool requests a global pool and its gateway, as swarmkit's
// allocator does on the leader.
func (h *harness) globalPool(subnet, gateway string) (string, error) {
	var p requestPoolResponse
	if err := h.call("IpamDriver.RequestPool", requestPoolRequest{AddressSpace: GlobalAddressSpace, Pool: subnet}, &p); err != nil {
		return "", err
	}
	return p.PoolID, h.call("IpamDriver.RequestAddress", requestAddressRequest{PoolID: p.PoolID, Address: gateway, Options: map[string]string{requestAddressType: gatewayRequest}}, nil)
}

// allocate is the leader's AllocateNetwork of network nid on subnet, with
// the given aux addresses.
func (h *harness) allocate(nid, subnet string, aux ...string) error {
	a := map[string]any{}
	for i, x := range aux {
		a[fmt.Sprintf("aux%d", i)] = x + "/" + strings.Split(subnet, "/")[1]
	}
	req := allocateNetworkRequest{NetworkID: nid, Options: map[string]string{"parent": "lan0"}, IPv4Data: []ipamData{{Pool: subnet, AuxAddresses: a}}}
	return h.call("NetworkDriver.AllocateNetwork", req, nil)
}

// taskAddr is the allocator's RequestAddress for a task (no MAC option),
// of want or of any free address.
func (h *harness) taskAddr(poolID, want string) (string, error) {
	var r requestAddressResponse
	err := h.call("IpamDriver.RequestAddress", requestAddressRequest{PoolID: poolID, Address: want, Options: map[string]string{"com.docker.network.ipam.serial": "true"}}, &r)
	return r.Address, err
}

func (f *fakeEngine) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// ipam is the driver's IPAM face, for calling it directly.
func (d *Driver) ipam() *ipamDriver { return (*ipamDriver)(d) }
