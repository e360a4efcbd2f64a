package ipam_test

import (
	"context"
	"net/netip"
	"testing"

	"github.com/medianet/medianet/ipam"
	"github.com/medianet/medianet/ipam/boltstore"
)

const syncNet = "media"

// heldStore is a real bbolt store holding blocks (prefix -> Lost reason,
// used offsets, bound).
func heldStore(t *testing.T, blocks []testBlock) ipam.Store {
	t.Helper()
	st, err := boltstore.Open(context.Background(), t.TempDir(), boltstore.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	err = st.Update(context.Background(), func(tx ipam.Tx) error {
		for _, tb := range blocks {
			b, err := ipam.NewBlock(netip.MustParsePrefix(tb.prefix), nil)
			if err != nil {
				return err
			}
			for _, i := range tb.used {
				b.SetUsed(i, true)
			}
			b.Lost, b.Bound = tb.lost, tb.bound
			if err := tx.PutBlock(syncNet, b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

type testBlock struct {
	prefix, lost, bound string
	used                []int
}

func blocksOf(t *testing.T, st ipam.Store) map[string]ipam.Block {
	t.Helper()
	out := map[string]ipam.Block{}
	err := st.View(context.Background(), func(tx ipam.Tx) error {
		return tx.ForEachBlock(syncNet, func(b ipam.Block) error {
			out[b.Prefix.String()] = b
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestApplyLostMarks(t *testing.T) {
	st := heldStore(t, []testBlock{
		{prefix: "10.0.0.0/28"},
		{prefix: "10.0.0.16/28", used: []int{3}},
		{prefix: "10.0.0.32/28", lost: "config: outside the subnets"},
		{prefix: "10.0.0.48/28", lost: "claimed by n1", used: []int{1}},
		{prefix: "10.0.0.80/28"},
	})
	marks := map[netip.Prefix]string{
		netip.MustParsePrefix("10.0.0.0/28"):  "claimed by n2", // empty: dropped
		netip.MustParsePrefix("10.0.0.16/28"): "claimed by n2", // in use: kept, lost
		netip.MustParsePrefix("10.0.0.32/28"): "claimed by n2", // lost to the config: left alone
		netip.MustParsePrefix("10.0.0.48/28"): "",              // usable again
		netip.MustParsePrefix("10.0.0.64/28"): "claimed by n2", // not held
		netip.MustParsePrefix("10.0.0.80/29"): "claimed by n2", // held as another prefix
	}
	if err := ipam.ApplyLostMarks(context.Background(), st, syncNet, marks); err != nil {
		t.Fatal(err)
	}
	got := blocksOf(t, st)
	for _, tc := range []struct {
		prefix string
		held   bool
		lost   string
	}{
		{"10.0.0.0/28", false, ""},
		{"10.0.0.16/28", true, "claimed by n2"},
		{"10.0.0.32/28", true, "config: outside the subnets"},
		{"10.0.0.48/28", true, ""},
		{"10.0.0.64/28", false, ""},
		{"10.0.0.80/28", true, ""},
	} {
		b, ok := got[tc.prefix]
		if ok != tc.held || b.Lost != tc.lost {
			t.Errorf("%s: held %v lost %q, want held %v lost %q", tc.prefix, ok, b.Lost, tc.held, tc.lost)
		}
	}
}

func TestRemoveIfEmpty(t *testing.T) {
	st := heldStore(t, []testBlock{{prefix: "10.0.0.0/28"}, {prefix: "10.0.0.16/28", used: []int{0}}})
	for _, tc := range []struct {
		prefix  string
		removed bool
	}{
		{"10.0.0.0/28", true},
		{"10.0.0.16/28", false}, // an address in use
		{"10.0.0.32/28", false}, // not held
		{"10.0.0.0/29", false},  // held as another prefix (and gone by now)
	} {
		removed, err := ipam.RemoveIfEmpty(context.Background(), st, syncNet, netip.MustParsePrefix(tc.prefix))
		if err != nil || removed != tc.removed {
			t.Errorf("RemoveIfEmpty(%s) = %v, %v; want %v", tc.prefix, removed, err, tc.removed)
		}
	}
	got := blocksOf(t, st)
	if _, ok := got["10.0.0.0/28"]; ok || len(got) != 1 {
		t.Errorf("store holds %v after the removal, want only 10.0.0.16/28", got)
	}
}

func TestHeldBlocksLeavesBoundOut(t *testing.T) {
	st := heldStore(t, []testBlock{
		{prefix: "10.0.0.0/28", used: []int{0, 5, 9}},
		{prefix: "10.0.0.16/28", lost: "claimed by n1"},
		{prefix: "10.0.0.40/32", bound: "n1", used: []int{0}},
	})
	held, err := ipam.HeldBlocks(context.Background(), st, syncNet)
	if err != nil {
		t.Fatal(err)
	}
	if len(held) != 2 {
		t.Fatalf("HeldBlocks = %v, want the two claims without the bound address", held)
	}
	if b := held[netip.MustParsePrefix("10.0.0.0/28")]; b.InUse() != 3 {
		t.Errorf("10.0.0.0/28 InUse = %d, want 3", b.InUse())
	}
	if b := held[netip.MustParsePrefix("10.0.0.16/28")]; b.Lost != "claimed by n1" || b.InUse() != 0 {
		t.Errorf("10.0.0.16/28 = lost %q in use %d, want lost and empty", b.Lost, b.InUse())
	}
}

func TestLostToConfig(t *testing.T) {
	for reason, want := range map[string]bool{"config: block outside the subnets": true, "claimed by n1": false, "": false} {
		if got := ipam.LostToConfig(reason); got != want {
			t.Errorf("LostToConfig(%q) = %v, want %v", reason, got, want)
		}
	}
}
