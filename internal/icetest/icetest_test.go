package icetest_test

import (
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/medianet/medianet/internal/coturntest"
	"github.com/medianet/medianet/internal/icetest"
	"github.com/medianet/medianet/internal/natlab"
)

func TestMain(m *testing.M) {
	icetest.MaybeRunAgent()
	os.Exit(m.Run())
}

// TestSession runs a session that must connect (an open host and a host
// behind MASQUERADE) and one that must not (a host whose UDP is blocked).
func TestSession(t *testing.T) {
	coturntest.Require(t)
	w := natlab.NewWorld(t)
	stun := coturntest.Start(t, w.Server.Name, coturntest.Options{IPs: []netip.Addr{natlab.ServerIP1}, STUNOnly: true})
	open, masq, blocked := w.AddSite(t, natlab.NoNAT), w.AddSite(t, natlab.Masquerade), w.AddSite(t, natlab.UDPBlocked)
	uri := "stun:" + stun.Addr().String()
	out, err := icetest.Session(masq.Host.Name, open.Host.Name, uri, icetest.AnswererFirst, 200*time.Millisecond, 5*time.Second)
	if err != nil || !out.Direct() {
		t.Errorf("masquerade offers to open: got %+v, %v, want a direct pair", out, err)
	}
	out, err = icetest.Session(open.Host.Name, blocked.Host.Name, uri, icetest.OffererFirst, 200*time.Millisecond, 3*time.Second)
	if err != nil || out.Direct() || out.Offerer.Connected {
		t.Errorf("open offers to udp-blocked: got %+v, %v, want no pair", out, err)
	}
}
