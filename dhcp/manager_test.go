package dhcp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/medianet/medianet/dhcp/dhcpapi"
	"github.com/medianet/medianet/internal/dhcptest"
	"github.com/medianet/medianet/internal/nstest"
	"github.com/medianet/medianet/macvlan"
	"github.com/prometheus/client_golang/prometheus"
)

// lab is a LAN with one DHCP server and containers with a macvlan each.
type lab struct {
	lan *nstest.LAN
	srv *dhcptest.Server
}

// config is dhcptest.TestConfig: short leases on 10.<base>.0.0/24.
var config = dhcptest.TestConfig

func newLab(t *testing.T, kind string, cfg dhcptest.Config) *lab {
	t.Helper()
	nstest.SkipUnlessRoot(t)
	lan := nstest.NewLAN(t, "mndh")
	return &lab{lan: lan, srv: dhcptest.Start(t, kind, lan, cfg)}
}

// container makes a namespace with a macvlan eth0 on the LAN.
func (l *lab) container(t *testing.T) *nstest.NS {
	t.Helper()
	ctr := nstest.NewNS(t, "mndc")
	if _, err := macvlan.Create(l.lan.Host.Path, macvlan.Spec{Master: l.lan.Master}, ctr.Path, "eth0"); err != nil {
		t.Fatal(err)
	}
	return ctr
}

func newManager(t *testing.T, dir string) *Manager {
	t.Helper()
	m, err := NewManager(Options{DataDir: dir, MinRetry: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

func request(ctr *nstest.NS, cid string) dhcpapi.AcquireRequest {
	return dhcpapi.AcquireRequest{Key: dhcpapi.Key{Network: "lan", ContainerID: cid, IfName: "eth0"}, Netns: ctr.Path,
		ClientID: "test/" + cid, Hostname: cid, Timeout: 5 * time.Second}
}

// configure puts the leased address on the link, as the plugin does.
func configure(t *testing.T, ctr *nstest.NS, l dhcpapi.Lease) netip.Prefix {
	t.Helper()
	p := netip.MustParsePrefix(l.Address)
	if err := macvlan.Configure(ctr.Path, "eth0", macvlan.Config{Addresses: []netip.Prefix{p}}); err != nil {
		t.Fatal(err)
	}
	return p
}

// waitRenewed waits until k's lease was bound after since.
func waitRenewed(t *testing.T, m *Manager, k dhcpapi.Key, since time.Time, d time.Duration) dhcpapi.Lease {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		l, err := m.Get(k)
		if err == nil && l.Bound.After(since) {
			return l
		}
		if time.Now().After(deadline) {
			t.Fatalf("lease of %s not renewed after %s: %+v, %v", k.ContainerID, d, l, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func waitState(t *testing.T, m *Manager, k dhcpapi.Key, state string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		l, err := m.Get(k)
		if err == nil && l.State == state {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("lease of %s: state %q after %s, want %q (%v)", k.ContainerID, l.State, d, state, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestLeaseLifecycle: a lease is obtained on the container's MAC with its
// client identifier and hostname, renewed at T1, kept across an agent
// restart (renewed by the new agent) and a server restart, and released
// on Release: the server's database shows it gone.
func TestLeaseLifecycle(t *testing.T) {
	for _, kind := range dhcptest.Kinds {
		t.Run(kind, func(t *testing.T) {
			l := newLab(t, kind, config(kind, 61))
			ctr := l.container(t)
			dir := t.TempDir()
			m := newManager(t, dir)
			req := request(ctr, "ctr-1")
			lease, err := m.Acquire(context.Background(), req)
			if err != nil {
				t.Fatalf("Acquire: %v\nserver log:\n%s", err, l.srv.Log())
			}
			addr := configure(t, ctr, lease)
			if !l.srv.Cfg.Subnet.Contains(addr.Addr()) || addr.Bits() != 24 || lease.Gateway != "10.61.0.1" {
				t.Errorf("lease %+v: want an address of %s/24 with gateway 10.61.0.1", lease, l.srv.Cfg.Subnet)
			}
			mac := ctr.MAC(t, "eth0").String()
			srvLease, ok, err := l.srv.LeaseOf(addr.Addr())
			if err != nil || !ok || !srvLease.Active || !strings.EqualFold(srvLease.MAC, mac) || srvLease.Hostname != "ctr-1" {
				t.Fatalf("server's lease of %s = %+v (present %v, %v), want active for MAC %s, hostname ctr-1", addr, srvLease, ok, err, mac)
			}
			if !strings.Contains(strings.ReplaceAll(srvLease.ClientID, ":", ""), fmt.Sprintf("%x", "test/ctr-1")) {
				t.Errorf("server's client id %q, want it to carry %q", srvLease.ClientID, "test/ctr-1")
			}
			checkMetric(t, m, lease)
			renewed := waitRenewed(t, m, req.Key, lease.Bound, 10*time.Second)
			if renewed.Address != lease.Address || !renewed.Expires.After(lease.Expires) {
				t.Errorf("renewal: %+v, want the same address with a later expiry than %s", renewed, lease.Expires)
			}

			// The agent restarts: the lease is still held and renewed.
			m.Close()
			m2 := newManager(t, dir)
			after, err := m2.Get(req.Key)
			if err != nil || after.Address != lease.Address {
				t.Fatalf("after agent restart: %+v, %v; want %s", after, err, lease.Address)
			}
			renewed = waitRenewed(t, m2, req.Key, after.Bound, 10*time.Second)

			// The server restarts: the next renewal keeps the address.
			if err := l.srv.Restart(); err != nil {
				t.Fatal(err)
			}
			renewed = waitRenewed(t, m2, req.Key, renewed.Bound, 10*time.Second)
			if renewed.Address != lease.Address {
				t.Errorf("after server restart: %s, want %s", renewed.Address, lease.Address)
			}

			if err := m2.Release(context.Background(), req.Key); err != nil {
				t.Fatal(err)
			}
			if err := l.srv.WaitLease(addr.Addr(), 5*time.Second, func(sl dhcptest.Lease, ok bool) bool { return !ok || !sl.Active }); err != nil {
				t.Errorf("RELEASE not seen by the server: %v\n%s", err, l.srv.Log())
			}
			if _, err := m2.Get(req.Key); !errors.Is(err, dhcpapi.ErrNotFound) {
				t.Errorf("Get after Release: %v, want ErrNotFound", err)
			}
			if recs, err := m2.st.List(); err != nil || len(recs) != 0 {
				t.Errorf("dhcp.db after Release: %d records, %v", len(recs), err)
			}
		})
	}
}

// TestServerGoneExpires: with the server gone, renewal and rebinding fail
// and at expiry the address is taken off the container's link and the
// lease shows expired.
func TestServerGoneExpires(t *testing.T) {
	cfg := config(dhcptest.Kea, 62)
	cfg.Lease, cfg.T1, cfg.T2 = 4*time.Second, 1*time.Second, 3*time.Second
	l := newLab(t, dhcptest.Kea, cfg)
	ctr := l.container(t)
	m := newManager(t, t.TempDir())
	req := request(ctr, "ctr-gone")
	lease, err := m.Acquire(context.Background(), req)
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	addr := configure(t, ctr, lease)
	if err := l.srv.Stop(); err != nil {
		t.Fatal(err)
	}
	waitState(t, m, req.Key, dhcpapi.StateExpired, 10*time.Second)
	if got := linkAddrs(t, ctr); len(got) != 0 {
		t.Errorf("after expiry the link still has %v (leased %s)", got, addr)
	}
}

// TestNAKAtRenewal: a server that lost its leases and no longer offers
// the address answers the renewal with NAK: the lease ends at once.
func TestNAKAtRenewal(t *testing.T) {
	for _, kind := range dhcptest.Kinds {
		t.Run(kind, func(t *testing.T) {
			cfg := config(kind, 63)
			cfg.T1 = 4 * time.Second
			l := newLab(t, kind, cfg)
			ctr := l.container(t)
			m := newManager(t, t.TempDir())
			req := request(ctr, "ctr-nak")
			lease, err := m.Acquire(context.Background(), req)
			if err != nil {
				t.Fatalf("Acquire: %v", err)
			}
			addr := configure(t, ctr, lease)
			must(t, l.srv.Stop())
			must(t, l.srv.ClearLeases())
			l.srv.Cfg.PoolFirst, l.srv.Cfg.PoolLast = netip.MustParseAddr("10.63.0.200"), netip.MustParseAddr("10.63.0.210")
			must(t, l.srv.Start())
			defer func() {
				if t.Failed() {
					t.Log(l.srv.Log())
				}
			}()
			waitState(t, m, req.Key, dhcpapi.StateExpired, 10*time.Second)
			if got := linkAddrs(t, ctr); len(got) != 0 {
				t.Errorf("after NAK the link still has %v (leased %s)", got, addr)
			}
		})
	}
}

// TestPoolExhausted: with the pool full the server stays silent; the
// second Acquire fails within its bound, names the server that holds the
// network's other lease, and records nothing.
func TestPoolExhausted(t *testing.T) {
	for _, kind := range dhcptest.Kinds {
		t.Run(kind, func(t *testing.T) {
			cfg := config(kind, 64)
			cfg.PoolLast = cfg.PoolFirst
			l := newLab(t, kind, cfg)
			m := newManager(t, t.TempDir())
			if _, err := m.Acquire(context.Background(), request(l.container(t), "ctr-a")); err != nil {
				t.Fatalf("first Acquire: %v", err)
			}
			req := request(l.container(t), "ctr-b")
			req.Timeout = 3 * time.Second
			_, err := m.Acquire(context.Background(), req)
			if !errors.Is(err, dhcpapi.ErrNoAnswer) || !strings.Contains(err.Error(), "10.64.0.2") {
				t.Fatalf("Acquire on a full pool: %v; want ErrNoAnswer naming server 10.64.0.2", err)
			}
			if _, err := m.Get(req.Key); !errors.Is(err, dhcpapi.ErrNotFound) {
				t.Errorf("failed Acquire left a lease: %v", err)
			}
			if recs, _ := m.st.List(); len(recs) != 1 {
				t.Errorf("dhcp.db holds %d records, want the first only", len(recs))
			}
		})
	}
}

func linkAddrs(t *testing.T, n *nstest.NS) []netip.Prefix {
	t.Helper()
	out, err := n.Exec("ip", "-4", "-o", "addr", "show", "dev", "eth0", "scope", "global")
	if err != nil {
		t.Fatal(err)
	}
	var ps []netip.Prefix
	for _, f := range strings.Fields(string(out)) {
		if p, err := netip.ParsePrefix(f); err == nil {
			ps = append(ps, p)
		}
	}
	return ps
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// checkMetric: the collector serves l's expiry under its address.
func checkMetric(t *testing.T, m *Manager, l dhcpapi.Lease) {
	t.Helper()
	reg := prometheus.NewRegistry()
	must(t, reg.Register(m.Collector()))
	mfs, err := reg.Gather()
	must(t, err)
	for _, mf := range mfs {
		if mf.GetName() != MetricLeaseExpiry {
			continue
		}
		for _, s := range mf.GetMetric() {
			labels := map[string]string{}
			for _, lp := range s.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			if labels["address"] == l.Address && labels["state"] == dhcpapi.StateBound && int64(s.GetGauge().GetValue()) == l.Expires.Unix() {
				return
			}
		}
	}
	t.Errorf("%s has no series for %s expiring at %d: %v", MetricLeaseExpiry, l.Address, l.Expires.Unix(), mfs)
}
