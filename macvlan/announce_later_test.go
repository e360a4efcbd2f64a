package macvlan

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/medianet/medianet/internal/nstest"
)

// TestAnnounceWhenConfiguredGivesUp: with no link of the MAC in the
// namespace, the wait ends with the context and an error naming the MAC;
// nothing is sent (the peer-cache tests cover what is sent).
func TestAnnounceWhenConfiguredGivesUp(t *testing.T) {
	nstest.SkipUnlessRoot(t)
	ns := nstest.NewNS(t, "mva")
	mac, _ := net.ParseMAC("02:00:00:00:a1:1a")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := AnnounceWhenConfigured(ctx, ns.Path, mac, []netip.Addr{netip.MustParseAddr("10.81.0.10")})
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), mac.String()) {
		t.Fatalf("AnnounceWhenConfigured with no such link: %v; want a deadline error naming %s", err, mac)
	}
	if err := AnnounceWhenConfigured(ctx, ns.Path, mac, nil); err != nil {
		t.Fatalf("nothing to announce: %v", err)
	}
}
