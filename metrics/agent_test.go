package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/medianet/medianet/internal/ipamtest"
	"github.com/medianet/medianet/ipam"
	"github.com/medianet/medianet/ipam/boltstore"
	"github.com/medianet/medianet/metrics/report"
	dto "github.com/prometheus/client_model/go"
)

var errTest = errors.New("test error")

// newAgent returns an agent for node-a over dataDir, closed at the end.
func newAgent(t *testing.T, dataDir string, nets ...Network) *Agent {
	t.Helper()
	a, err := New(Options{Node: "node-a", DataDir: dataDir,
		Sources: []NetworkSource{Static(func(context.Context) ([]Network, error) { return nets, nil })}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

// values gathers the agent's registry and returns series name's values by
// their labels ("k=v,k=v", sorted); a histogram's value is its count.
func values(t *testing.T, a *Agent, name string) map[string]float64 {
	t.Helper()
	mfs, err := a.reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			out[labelKey(m)] = metricValue(m)
		}
	}
	return out
}

func labelKey(m *dto.Metric) string {
	var ls []string
	for _, l := range m.GetLabel() {
		ls = append(ls, l.GetName()+"="+l.GetValue())
	}
	slices.Sort(ls)
	return strings.Join(ls, ",")
}

func metricValue(m *dto.Metric) float64 {
	switch {
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return 0
}

// allocate makes n allocations of cfg in the store in dir.
func allocate(t *testing.T, dir string, cfg ipam.Config, n int) {
	t.Helper()
	st, err := boltstore.Open(context.Background(), dir, boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a := ipamtest.Allocator(t, cfg, st)
	for i := range n {
		if _, err := a.Allocate(context.Background(), ipam.Request{ContainerID: fmt.Sprintf("c%d", i), IfName: "eth0"}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCollectorReadsStore(t *testing.T) {
	dir := t.TempDir()
	dual := ipam.Config{Network: "media", Node: "node-a", BlockSize: 28, BlockSize6: 124,
		Subnets: []ipam.Subnet{{Prefix: pfx("10.9.0.0/24")}, {Prefix: pfx("fd09::/64")}},
		NodeRanges: map[string][]netip.Prefix{
			"node-a": {pfx("10.9.0.0/27"), pfx("fd09::/120")},
			"node-b": {pfx("10.9.0.32/27"), pfx("fd09::100/120")}}}
	orphan := ipamtest.Config("gone", "10.8.0.0/24")
	// Network address and default gateway (.1, ::1) are reserved: 14 in
	// the first block, 6 in the next; node-a's ranges hold 30 and 254.
	allocate(t, dir, dual, 20)
	allocate(t, dir, orphan, 3) // no configuration names it any more
	a := newAgent(t, dir, Network{Config: dual})

	l := func(net, sub string) string { return "network=" + net + ",node=node-a,subnet=" + sub }
	want := map[string]map[string]float64{
		AddressesInUse:     {l("media", "10.9.0.0/24"): 20, l("media", "fd09::/64"): 20, l("gone", ""): 3},
		BlocksHeld:         {l("media", "10.9.0.0/24"): 2, l("media", "fd09::/64"): 2, l("gone", ""): 1},
		BlocksLost:         {l("media", "10.9.0.0/24"): 0, l("media", "fd09::/64"): 0, l("gone", ""): 0},
		BlockAddressesFree: {l("media", "10.9.0.0/24"): 14 + 16 - 20, l("media", "fd09::/64"): 14 + 16 - 20, l("gone", ""): 64 - 2 - 3},
		RangeAddresses:     {l("media", "10.9.0.0/24"): 30, l("media", "fd09::/64"): 254},
		RangeAddressesFree: {l("media", "10.9.0.0/24"): 10, l("media", "fd09::/64"): 234},
		StoreScrapeSuccess: {"node=node-a": 1},
	}
	for name, w := range want {
		if got := values(t, a, name); !equalValues(got, w) {
			t.Errorf("%s = %v, want %v", name, got, w)
		}
	}
	if got := values(t, a, BlockClaims); got[`network=gone,node=node-a`] != 0 || len(got) != 2 {
		t.Errorf("%s = %v, want zero for both networks", BlockClaims, got)
	}
}

func equalValues(got, want map[string]float64) bool {
	if len(got) != len(want) {
		return false
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			return false
		}
	}
	return true
}

// TestCollectorMissingStore: a scrape before any allocation neither fails
// nor creates the store.
func TestCollectorMissingStore(t *testing.T) {
	dir := t.TempDir()
	a := newAgent(t, dir, Network{Config: ipamtest.Config("media", "10.9.0.0/24")})
	if got := values(t, a, StoreScrapeSuccess); got["node=node-a"] != 1 {
		t.Errorf("%s = %v, want 1", StoreScrapeSuccess, got)
	}
	if got := values(t, a, RangeAddressesFree); got["network=media,node=node-a,subnet=10.9.0.0/24"] != 253 {
		t.Errorf("%s = %v, want 253 free in an empty /24", RangeAddressesFree, got)
	}
	if _, err := os.Stat(filepath.Join(dir, boltstore.FileName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("scrape created the store: stat %s: %v", boltstore.FileName, err)
	}
}

// TestCollectorUnreadableStore: a store that cannot be read gives
// scrape_success 0 and no state, not a failed scrape.
func TestCollectorUnreadableStore(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, boltstore.FileName), []byte("not a bbolt file"), 0o600); err != nil {
		t.Fatal(err)
	}
	a := newAgent(t, dir, Network{Config: ipamtest.Config("media", "10.9.0.0/24")})
	if got := values(t, a, StoreScrapeSuccess); got["node=node-a"] != 0 {
		t.Errorf("%s = %v, want 0", StoreScrapeSuccess, got)
	}
	if got := values(t, a, AddressesInUse); len(got) != 0 {
		t.Errorf("%s = %v, want none", AddressesInUse, got)
	}
}

// waitValue polls series name until its value for key is want.
func waitValue(t *testing.T, a *Agent, name, key string, want float64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := values(t, a, name)
		if got[key] == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v, want %s: %v", name, got, key, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestReports(t *testing.T) {
	a, dir := listening(t)
	fi, err := os.Stat(report.SocketPath(dir))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("report socket: %v, mode %v, want 0600", err, fi.Mode().Perm())
	}
	sends := []report.Report{
		{Plugin: report.PluginMain, Verb: "ADD", Network: "media", Duration: 30 * time.Millisecond, LockWait: 2 * time.Millisecond, Claims: 1},
		{Plugin: report.PluginMain, Verb: "ADD", Network: "media", Code: 100, Duration: 5 * time.Millisecond},
		{Plugin: report.PluginIPAM, Verb: "DEL", Network: "media", Duration: time.Millisecond, ClaimFailures: 2, EtcdErrors: 2},
	}
	for _, r := range sends {
		if err := report.Send(dir, r); err != nil {
			t.Fatalf("send %+v: %v", r, err)
		}
	}
	if err := sendRaw(dir, []byte(`{"v":99}`)); err != nil {
		t.Fatal(err)
	}
	waitValue(t, a, Reports, "node=node-a,result=malformed", 1)
	waitValue(t, a, Reports, "node=node-a,result=ok", 3)
	ops := "network=media,node=node-a,operation=ADD,plugin=medianet,code="
	for key, want := range map[string]float64{ops + "0": 1, ops + "100": 1, "code=0,network=media,node=node-a,operation=DEL,plugin=medianet-ipam": 1} {
		if got := values(t, a, Operations); got[sortedKey(key)] != want {
			t.Errorf("%s{%s} = %v, want %v (all: %v)", Operations, key, got[sortedKey(key)], want, got)
		}
	}
	if got := values(t, a, OperationDuration)["network=media,node=node-a,operation=ADD,plugin=medianet"]; got != 2 {
		t.Errorf("%s count for ADD = %v, want 2", OperationDuration, got)
	}
	if got := values(t, a, StoreLockWait)["network=media,node=node-a,plugin=medianet"]; got != 2 {
		t.Errorf("%s count = %v, want 2", StoreLockWait, got)
	}
	for name, want := range map[string]float64{BlockClaims: 1, BlockClaimFailures: 2} {
		if got := values(t, a, name)["network=media,node=node-a"]; got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if got := values(t, a, EtcdErrors)["network=media,node=node-a,source=plugin"]; got != 2 {
		t.Errorf("%s = %v, want 2", EtcdErrors, got)
	}
}

// sortedKey sorts a "k=v,k=v" key's pairs.
func sortedKey(k string) string {
	parts := strings.Split(k, ",")
	slices.Sort(parts)
	return strings.Join(parts, ",")
}

// sendRaw sends b as one report (one connection).
func sendRaw(dir string, b []byte) error {
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: report.SocketPath(dir), Net: "unix"})
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Write(b)
	return err
}

// TestReportSocketLifecycle: a socket left by a dead agent is replaced,
// a live agent's is not taken, and Close removes it.
func TestReportSocketLifecycle(t *testing.T) {
	dir := t.TempDir()
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: report.SocketPath(dir), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	stale.Close() // the file stays, nobody listens: what kill -9 leaves
	a := newAgent(t, dir)
	if err := a.ListenReports(); err != nil {
		t.Fatalf("listen over a stale socket: %v", err)
	}
	b := newAgent(t, dir)
	if err := b.ListenReports(); err == nil || !strings.Contains(err.Error(), "another agent") {
		t.Errorf("second agent on %s: err %v, want another agent listens", dir, err)
	}
	if err := report.Send(dir, report.Report{Plugin: report.PluginMain, Verb: "ADD"}); err != nil {
		t.Errorf("send to the first agent after the second failed: %v", err)
	}
	a.Close()
	if _, err := os.Stat(report.SocketPath(dir)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket after Close: %v, want gone", err)
	}
	notSocket := t.TempDir()
	if err := os.WriteFile(report.SocketPath(notSocket), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := newAgent(t, notSocket).ListenReports(); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("listen over a regular file: err %v, want not a socket", err)
	}
}

func TestDockerHandler(t *testing.T) {
	a := newAgent(t, t.TempDir())
	inner := http.NewServeMux()
	inner.HandleFunc("POST /IpamDriver.RequestAddress", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
	})
	inner.HandleFunc("POST /NetworkDriver.Join", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"Err":"no"}`, http.StatusInternalServerError)
	})
	srv := httptest.NewServer(a.DockerHandler(inner))
	defer srv.Close()
	for path, body := range map[string]string{
		"/IpamDriver.RequestAddress": `{"PoolID":"medianet-local/10.9.0.0/24/ab"}`,
		"/NetworkDriver.Join":        `{"NetworkID":"n1","EndpointID":"e1"}`,
		"/Plugin.Activate":           ``,
	} {
		resp, err := http.Post(srv.URL+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	got := values(t, a, Operations)
	want := map[string]float64{
		"code=0,network=medianet-local/10.9.0.0/24/ab,node=node-a,operation=IpamDriver.RequestAddress,plugin=docker": 1,
		"code=500,network=n1,node=node-a,operation=NetworkDriver.Join,plugin=docker":                                 1,
	}
	if !equalValues(got, want) {
		t.Errorf("%s = %v, want %v", Operations, got, want)
	}
	if got := values(t, a, StoreLockWait); len(got) != 0 {
		t.Errorf("%s = %v, want none for Docker calls", StoreLockWait, got)
	}
}

// BenchmarkScrape: one scrape of a store holding 1,000 allocations in
// /26 blocks (the state gauges only), i.e. the read a scrape makes.
func BenchmarkScrape(b *testing.B) {
	dir := b.TempDir()
	cfg := ipam.Config{Network: "bench", Node: "node-a", Subnets: []ipam.Subnet{{Prefix: pfx("10.80.0.0/16")}}}
	st, err := boltstore.Open(context.Background(), dir, boltstore.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	al, err := ipam.NewAllocator(cfg, st, nil)
	if err != nil {
		b.Fatal(err)
	}
	for i := range 1000 {
		if _, err := al.Allocate(context.Background(), ipam.Request{ContainerID: fmt.Sprintf("c%d", i), IfName: "eth0"}); err != nil {
			b.Fatal(err)
		}
	}
	st.Close()
	a, err := New(Options{Node: "node-a", DataDir: dir,
		Sources: []NetworkSource{Static(func(context.Context) ([]Network, error) { return []Network{{Config: cfg}}, nil })}})
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	for b.Loop() {
		if _, err := a.reg.Gather(); err != nil {
			b.Fatal(err)
		}
	}
}
