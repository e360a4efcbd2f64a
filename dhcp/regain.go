package dhcp

import (
	"context"
	"fmt"
	"time"

	"github.com/medianet/medianet/dhcp/dhcpapi"
)

// After an expiry. A lease ends on our side when the server stayed silent
// through renewal and rebinding (or refused it); its address is taken off
// the container (expire). The container is still there, and a runtime
// does not recreate it on its own: kubelet never calls CHECK, and Docker
// has no such verb. So when the server is back, the keeper asks it for
// the same address again, as a host's DHCP client would after a server
// outage: INIT-REBOOT with the same client identifier, from the
// container's link. An ACK puts the address back, with the routes the
// link had, and the lease is kept again; a NAK (the server gave the
// address away, or no longer serves it) or silence leaves the lease
// expired, CHECK failing, and the keeper tries again later. It never
// takes another address: the workload's address is known to others (the
// pod's IP in the API, Docker's endpoint); a new one needs a new
// container.

// maxRegainWait is the longest wait between two attempts to regain an
// expired lease; the first comes after minRetry or the lease time,
// whichever is shorter, and each doubles.
const maxRegainWait = 5 * time.Minute

// regainLoop tries, while k's lease stays expired, to get its address
// back, at waits doubling from minRetry (or the lease time, when
// shorter) up to maxRegainWait. It returns
// true when the lease is bound again, false when ctx ended or the lease
// went.
func (m *Manager) regainLoop(ctx context.Context, k dhcpapi.Key) bool {
	wait := m.minRetry
	if r := m.record(k); r != nil {
		if l, err := r.lease(); err == nil {
			// A network of short leases expects a short outage to heal
			// as quickly: the first try comes within one lease time.
			wait = min(wait, max(l.ACK.IPAddressLeaseTime(time.Hour), time.Second))
		}
	}
	for {
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return false
		case <-timer.C:
		}
		r := m.record(k)
		if r == nil || r.State != dhcpapi.StateExpired {
			return r != nil
		}
		err := m.regainOnce(ctx, r)
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		m.log.Debug("dhcp expired lease not regained yet", "network", k.Network, "container", k.ContainerID, "ifname", k.IfName, "err", err)
		wait = min(wait*2, maxRegainWait)
	}
}

// regainOnce asks once for r's address in INIT-REBOOT; on ACK it puts
// the address and routes back on the link and records the lease bound.
// A lease it cannot put back or record is released at once.
func (m *Manager) regainOnce(ctx context.Context, r *Record) error {
	l, err := r.lease()
	if err != nil {
		return err
	}
	p, err := address(l.ACK)
	if err != nil {
		return err
	}
	nl, err := regain(ctx, r.Netns, r.link(), r.identity(), p.Addr())
	if err != nil {
		return err
	}
	np, err := address(nl.ACK)
	if err == nil && np.Addr() != p.Addr() {
		err = fmt.Errorf("server %s answered with %s, not %s", nl.ACK.ServerIdentifier(), np.Addr(), p.Addr())
	}
	if err == nil {
		err = putBack(r.Netns, r.link(), np, r.Routes)
	}
	nr := *r
	nr.Offer, nr.ACK, nr.Bound, nr.State, nr.Routes = nl.Offer.ToBytes(), nl.ACK.ToBytes(), nl.CreationTime, dhcpapi.StateBound, nil
	if err == nil {
		if err = m.st.Put(&nr); err != nil {
			_, _ = takeOff(r.Netns, r.link(), np)
		}
	}
	if err != nil {
		// Not put back or not recorded: give it back rather than squat.
		_ = release(r.Netns, r.link(), r.identity(), nl)
		return err
	}
	m.setRecord(&nr)
	m.log.Info("dhcp expired lease regained; address back on the container", "network", r.Key.Network, "container", r.Key.ContainerID,
		"ifname", r.Key.IfName, "address", np, "server", nl.ACK.ServerIdentifier(), "expires", leaseTimes(nl.ACK, nl.CreationTime).expiry)
	return nil
}
