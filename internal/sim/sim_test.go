package sim

import (
	"context"
	"net/netip"
	"os"
	"testing"

	"github.com/medianet/medianet/internal/etcdtest"
	"github.com/medianet/medianet/ipam"
)

func testRunner(t *testing.T) *Runner {
	t.Helper()
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		t.Setenv("TMPDIR", "/dev/shm")
	}
	srv := etcdtest.Start(t, etcdtest.Options{})
	r := &Runner{Endpoints: srv.Endpoints(), Dir: t.TempDir()}
	if err := r.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// plant writes a held block and an allocation of addr straight into
// node n's store, as a bug would leave them.
func plant(t *testing.T, n *node, block string, key ipam.Key, addr string) {
	t.Helper()
	p, ip := netip.MustParsePrefix(block), netip.MustParseAddr(addr)
	err := n.bolt.Update(context.Background(), func(tx ipam.Tx) error {
		b, err := ipam.NewBlock(p, nil)
		if err != nil {
			return err
		}
		off, _ := b.Offset(ip)
		b.SetUsed(off, true)
		if err := tx.PutBlock(Network, b); err != nil {
			return err
		}
		return tx.PutAllocation(ipam.Allocation{Key: key, IPs: []netip.Addr{ip}})
	})
	if err != nil {
		t.Fatal(err)
	}
	n.storeGen++
}

// TestInvariantsCatchPlantedStates: the checker reports states planted
// in the real stores and etcd, and nothing for a sound one.
func TestInvariantsCatchPlantedStates(t *testing.T) {
	r := testRunner(t)
	testPlantedStates(t, r, func(w *World, block, node string) {
		name := block[:len(block)-3] + "-" + block[len(block)-2:]
		if _, err := r.raw.Put(context.Background(), w.be.(*etcdBackend).netPrefix()+"blocks/"+name, `{"node":"`+node+`"}`); err != nil {
			t.Fatal(err)
		}
	})
}

// testPlantedStates plants states in r's worlds, block claims through
// claim, and checks that the invariants report each as they must.
func testPlantedStates(t *testing.T, r *Runner, plantClaim func(w *World, block, node string)) {
	claim := func(w *World, block, node string) {
		plantClaim(w, block, node)
		w.srcDirty = true
	}
	for _, tc := range []struct {
		name  string
		plant func(w *World)
		want  string
	}{
		{"sound", func(w *World) {
			claim(w, "10.0.0.16/28", "n0")
			plant(t, w.nodes[0], "10.0.0.16/28", ipam.Key{Network: Network, ContainerID: "c1", IfName: ifname}, "10.0.0.17")
		}, ""},
		{"live twice", func(w *World) {
			claim(w, "10.0.0.16/28", "n0")
			claim(w, "10.0.0.16/30", "n1")
			plant(t, w.nodes[0], "10.0.0.16/28", ipam.Key{Network: Network, ContainerID: "c1", IfName: ifname}, "10.0.0.17")
			plant(t, w.nodes[1], "10.0.0.16/30", ipam.Key{Network: Network, ContainerID: "c2", IfName: ifname}, "10.0.0.17")
		}, "live-twice"},
		{"usable twice", func(w *World) {
			claim(w, "10.0.0.16/28", "n0")
			plant(t, w.nodes[0], "10.0.0.16/28", ipam.Key{Network: Network, ContainerID: "c1", IfName: ifname}, "10.0.0.17")
			plant(t, w.nodes[1], "10.0.0.18/32", ipam.MovedKey(Network, "n0", netip.MustParseAddr("10.0.0.18")), "10.0.0.18")
			plant(t, w.nodes[1], "10.0.0.20/32", ipam.MovedKey(Network, "n0", netip.MustParseAddr("10.0.0.20")), "10.0.0.20")
			w.nodes[1].bolt.Update(context.Background(), func(tx ipam.Tx) error {
				b, _ := ipam.NewBlock(netip.MustParsePrefix("10.0.0.21/32"), nil)
				return tx.PutBlock(Network, b)
			})
			w.nodes[1].storeGen++
		}, "usable-twice"},
		{"unaccounted", func(w *World) {
			plant(t, w.nodes[2], "10.0.0.32/28", ipam.Key{Network: Network, ContainerID: "c3", IfName: ifname}, "10.0.0.33")
		}, "unaccounted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, err := r.newWorld(3)
			if err != nil {
				t.Fatal(err)
			}
			defer w.close()
			tc.plant(w)
			w.checkInvariants()
			got := ""
			if w.violation != nil {
				got = w.violation.Kind
			}
			if got != tc.want {
				t.Errorf("violation %v, want kind %q", w.violation, tc.want)
			}
		})
	}
}

// TestRunIsDeterministic: a seed gives the same steps and outcome twice.
func TestRunIsDeterministic(t *testing.T) {
	testDeterministic(t, testRunner(t))
}

func testDeterministic(t *testing.T, r *Runner) {
	a, err := r.Run(7, 120)
	if err != nil {
		t.Fatal(err)
	}
	b, err := r.Run(7, 120)
	if err != nil {
		t.Fatal(err)
	}
	if a.Replay.String() != b.Replay.String() || (a.Violation == nil) != (b.Violation == nil) {
		t.Errorf("seed 7 twice:\n%s%v\nthen\n%s%v", a.Replay, a.Violation, b.Replay, b.Violation)
	}
	if a.Steps < 100 {
		t.Errorf("run of seed 7 applied %d steps, want at least 100", a.Steps)
	}
}
