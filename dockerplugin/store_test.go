package dockerplugin

import (
	"context"
	"testing"

	"github.com/medianet/medianet/ipam"
	"github.com/medianet/medianet/ipam/boltstore"
)

// allocations lists the IPAM store's allocations (the driver must be idle).
func allocations(t *testing.T, h *harness) []ipam.Allocation {
	t.Helper()
	ctx := context.Background()
	st, err := boltstore.Open(ctx, h.dir, boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Check(ctx); err != nil {
		t.Errorf("ipam store check: %v", err)
	}
	all, err := ipam.List(ctx, st, "")
	if err != nil {
		t.Fatal(err)
	}
	return all
}
