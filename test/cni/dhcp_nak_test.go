package cni_test

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/medianet/medianet/internal/dhcptest"
	"github.com/medianet/medianet/internal/nstest"
)

// TestDHCPNAKOnAdd: a sticky pod deleted and added again asks for its
// remembered address in INIT-REBOOT. The server, restarted without its
// leases and with its pool moved to one address another pod holds,
// refuses it (DHCPNAK) and then offers nothing: ADD fails with code 11,
// naming the server's NAK of the remembered address, and leaves no link
// and no lease. Once the other pod is gone, the same ADD starts over
// after the NAK (DISCOVER) and gets the new pool's address.
func TestDHCPNAKOnAdd(t *testing.T) {
	for i, kind := range dhcptest.Kinds {
		t.Run(kind, func(t *testing.T) {
			base := 83 + i
			cfg := dhcpConfig(kind, base)
			l := newDHCPLab(t, kind, cfg)
			sticky := l.conf(l.lan.Master, map[string]any{"timeout": "6s"}, map[string]any{"sticky": "30m"})
			add := inv{host: l.lan.Host, verb: "ADD", cid: "jvb-1", netns: nstest.NewNS(t, "mncc").Path, args: podArgs("media", "jvb-0"), conf: sticky}
			remembered := parseResult(t, add.mustRun(t)).prefixes(t)[0].Addr()
			del := add
			del.verb = "DEL"
			del.mustRun(t)

			must(t, l.srv.Stop())
			must(t, l.srv.ClearLeases())
			only := netip.MustParseAddr(fmt.Sprintf("10.%d.0.200", base))
			l.srv.Cfg.PoolFirst, l.srv.Cfg.PoolLast = only, only
			must(t, l.srv.Start())
			other := inv{host: l.lan.Host, verb: "ADD", cid: "other", netns: nstest.NewNS(t, "mncc").Path, args: podArgs("media", "other"),
				conf: l.conf(l.lan.Master, map[string]any{}, nil)}
			if got := parseResult(t, other.mustRun(t)).prefixes(t)[0].Addr(); got != only {
				t.Fatalf("other pod got %s, want the pool's only address %s", got, only)
			}

			ctr := nstest.NewNS(t, "mncc")
			again := add
			again.cid, again.netns = "jvb-2", ctr.Path
			naks := strings.Count(l.srv.Log(), "NAK")
			c := again.run(t)
			if c.Exit == 0 || c.Err().Code != 11 {
				t.Fatalf("ADD with the remembered address refused and the pool full: %v; want code 11", c)
			}
			for _, want := range []string{"DHCPNAK", cfg.Server.String(), remembered.String(), "no DHCPOFFER"} {
				if !strings.Contains(c.Err().Msg, want) {
					t.Errorf("ADD's error does not say %q: %s", want, c.Err().Msg)
				}
			}
			if strings.Count(l.srv.Log(), "NAK") == naks {
				t.Errorf("the server logged no NAK for the remembered %s", remembered)
			}
			if ls := macvlans(t, ctr); len(ls) != 0 {
				t.Errorf("links left in the container: %v", ls)
			}
			if rows := ctlLeases(t, l.dataDir); len(rows) != 1 || rows[0]["containerID"] != "other" {
				t.Errorf("leases after the failed ADD: %v, want the other pod's only", rows)
			}

			otherDel := other
			otherDel.verb = "DEL"
			otherDel.mustRun(t)
			if err := l.srv.WaitLease(only, 5*time.Second, func(sl dhcptest.Lease, ok bool) bool { return !ok || !sl.Active }); err != nil {
				t.Fatalf("RELEASE of the other pod not seen: %v", err)
			}
			if got := parseResult(t, again.mustRun(t)).prefixes(t)[0].Addr(); got != only {
				t.Errorf("ADD after the NAK with room in the pool: %s, want %s", got, only)
			}
		})
	}
}
