package dhcp

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/medianet/medianet/dhcp/dhcpapi"
	"github.com/medianet/medianet/internal/dhcptest"
	"github.com/medianet/medianet/internal/nstest"
)

// movePool restarts l's server having lost its leases, serving .first
// to .last of its subnet.
func movePool(t *testing.T, l *lab, first, last byte) (netip.Addr, netip.Addr) {
	t.Helper()
	must(t, l.srv.Stop())
	must(t, l.srv.ClearLeases())
	lo, hi := l.srv.Cfg.Subnet.Addr().As4(), l.srv.Cfg.Subnet.Addr().As4()
	lo[3], hi[3] = first, last
	l.srv.Cfg.PoolFirst, l.srv.Cfg.PoolLast = netip.AddrFrom4(lo), netip.AddrFrom4(hi)
	must(t, l.srv.Start())
	return l.srv.Cfg.PoolFirst, l.srv.Cfg.PoolLast
}

// TestNAKOnSelecting: the server loses its leases and moves its pool
// between its OFFER and the client's REQUEST, and refuses the REQUEST
// (dnsmasq with NAK, kea by silence): Acquire fails with an error naming
// the server, and records nothing. Both ways in: the container's link (CNI) and a short-lived
// macvlan with the endpoint's MAC on the parent (Docker's RequestAddress,
// whose link is gone after the failure).
func TestNAKOnSelecting(t *testing.T) {
	base := byte(65)
	for _, kind := range dhcptest.Kinds {
		for _, path := range []string{"netns", "parent"} {
			t.Run(kind+"/"+path, func(t *testing.T) {
				nstest.SkipUnlessRoot(t)
				cfg := config(kind, base)
				base++
				var l *lab
				if path == "parent" {
					lan := nstest.NewRootLAN(t, "mndp")
					l = &lab{lan: lan, srv: dhcptest.Start(t, kind, lan, cfg)}
				} else {
					l = newLab(t, kind, cfg)
				}
				m := newManager(t, t.TempDir())
				hookAfterOffer = func(*dhcpv4.DHCPv4) { movePool(t, l, 200, 210) }
				t.Cleanup(func() { hookAfterOffer = nil })
				var req dhcpapi.AcquireRequest
				if path == "parent" {
					req = dhcpapi.AcquireRequest{Key: dhcpapi.Key{Network: "lan", ContainerID: "02:42:0a:00:00:09", IfName: "docker"},
						Parent: l.lan.Master, MAC: "02:42:0a:00:00:09", ClientID: "test/docker/02:42:0a:00:00:09"}
				} else {
					req = request(l.container(t), "ctr-sel")
				}
				req.Timeout = 10 * time.Second
				_, err := m.Acquire(context.Background(), req)
				// dnsmasq answers NAK; kea stays silent to a REQUEST for an
				// address outside its pool in SELECTING (its log says
				// ALLOC_ENGINE_V4_REQUEST_OUT_OF_POOL, nothing is sent).
				want, says := dhcpapi.ErrNAK, "DHCPNAK"
				if kind == dhcptest.Kea {
					want, says = dhcpapi.ErrNoAnswer, "did not answer"
				}
				if !errors.Is(err, want) || !strings.Contains(err.Error(), says) || !strings.Contains(err.Error(), cfg.Server.String()) {
					t.Fatalf("Acquire with its REQUEST refused: %v; want %v naming server %s\nserver log:\n%s", err, want, cfg.Server, l.srv.Log())
				}
				if _, err := m.Get(req.Key); !errors.Is(err, dhcpapi.ErrNotFound) {
					t.Errorf("a refused Acquire left a lease: %v", err)
				}
				if recs, _ := m.st.List(); len(recs) != 0 {
					t.Errorf("dhcp.db holds %d records after a refused Acquire", len(recs))
				}
			})
		}
	}
}

// TestInitReboot: a workload that comes back asks for its remembered
// address. Never released (sticky): in INIT-REBOOT, and the server's ACK
// gives it back without an OFFER; the server having lost its leases and
// moved its pool answers NAK, and the client starts over with DISCOVER
// and gets an address of the new pool. Released: with DISCOVER and
// option 50 (the server may have forgotten it), and it comes back too.
func TestInitReboot(t *testing.T) {
	for i, kind := range dhcptest.Kinds {
		t.Run(kind, func(t *testing.T) {
			cfg := config(kind, byte(69+i))
			l := newLab(t, kind, cfg)
			ctr := l.container(t)
			m := newManager(t, t.TempDir())
			ctx := context.Background()
			req := request(ctr, "ctr-reboot")
			first, err := m.Acquire(ctx, req)
			must(t, err)
			must(t, m.Release(ctx, req.Key))
			offers := countOffers(l.srv)
			again, err := m.Acquire(ctx, req)
			if err != nil || again.Address != first.Address || countOffers(l.srv) == offers {
				t.Fatalf("Acquire after a RELEASE: %+v, %v, %d OFFERs; want %s back through DISCOVER", again, err, countOffers(l.srv)-offers, first.Address)
			}

			req.Sticky = true
			must(t, m.Release(ctx, req.Key)) // a non-sticky lease: RELEASE
			_, err = m.Acquire(ctx, req)
			must(t, err)
			must(t, m.Release(ctx, req.Key)) // sticky: no RELEASE
			offers = countOffers(l.srv)
			again, err = m.Acquire(ctx, req)
			if err != nil || again.Address != first.Address {
				t.Fatalf("Acquire of a sticky lease: %+v, %v; want %s back", again, err, first.Address)
			}
			if n := countOffers(l.srv); n != offers {
				t.Errorf("the server sent %d OFFERs for an INIT-REBOOT, want none", n-offers)
			}
			must(t, m.Release(ctx, req.Key))

			lo, hi := movePool(t, l, 200, 210)
			naks := strings.Count(l.srv.Log(), "NAK")
			moved, err := m.Acquire(ctx, req)
			if err != nil {
				t.Fatalf("Acquire after the pool moved: %v\nserver log:\n%s", err, l.srv.Log())
			}
			if a := netip.MustParsePrefix(moved.Address).Addr(); a.Less(lo) || hi.Less(a) {
				t.Errorf("after the NAK: %s, want an address of the new pool %s-%s", a, lo, hi)
			}
			if strings.Count(l.srv.Log(), "NAK") == naks {
				t.Errorf("the server logged no NAK for the remembered %s:\n%s", first.Address, l.srv.Log())
			}
		})
	}
}

// countOffers counts the mentions of OFFERs in the server's log (both
// servers name the message type when they send it).
func countOffers(s *dhcptest.Server) int {
	return strings.Count(s.Log(), "DHCPOFFER")
}
