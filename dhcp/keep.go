package dhcp

import (
	"context"
	"errors"
	"syscall"
	"time"

	"github.com/medianet/medianet/dhcp/dhcpapi"
)

// keep renews k's lease until ctx ends: at T1 (or at once when soon: a
// new hostname to tell the server) unicast to its server, from T2
// broadcast (rebinding), each attempt bounded by the time left in its
// phase and retried after half of it (at least minRetry, RFC 2131
// 4.4.5). A NAK, or the expiry without an ACK, ends the lease: its
// address is taken off the link and the record marked expired, for
// CHECK and medianetctl to report.
func (m *Manager) keep(ctx context.Context, k dhcpapi.Key, soon bool) {
	quiet := false // a local failure was logged
	for {
		r := m.record(k)
		if r == nil || r.State != dhcpapi.StateBound {
			return
		}
		l, err := r.lease()
		if err != nil {
			m.log.Error("dhcp lease unreadable; not renewed", "container", k.ContainerID, "ifname", k.IfName, "err", err)
			return
		}
		t := leaseTimes(l.ACK, r.Bound)
		now := m.now()
		var next time.Time
		switch {
		case now.Before(t.t1) && !soon:
			next = t.t1
		case now.Before(t.expiry):
			rebinding := !now.Before(t.t2)
			phaseEnd := t.t2
			if rebinding {
				phaseEnd = t.expiry
			}
			done, err := m.renewOnce(ctx, r, rebinding, phaseEnd, quiet)
			if done || !local(err) {
				soon = false // else the link is not there yet: soon again
			}
			if done {
				quiet = false
				continue
			}
			if errors.Is(err, dhcpapi.ErrNAK) {
				m.expire(r, err)
				return
			}
			if ctx.Err() != nil {
				return
			}
			wait := max(phaseEnd.Sub(m.now())/2, m.minRetry)
			if local(err) {
				// Nothing reached the server: the namespace or link is
				// not there (yet: Docker binds a container's namespace
				// after Join). Look again soon, quietly.
				wait, quiet = localRetry, true
			}
			next = m.now().Add(wait)
			if next.After(phaseEnd) {
				next = phaseEnd
			}
			if !rebinding && next.After(t.t2) {
				next = t.t2
			}
			if now.Before(t.t1) && next.After(t.t1) && !soon {
				next = t.t1 // an early renewal failed: T1's still comes
			}
		default:
			m.expire(r, errors.New("no ACK before the lease's end"))
			return
		}
		timer := time.NewTimer(time.Until(next))
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
	}
}

// localRetry is the wait after a renewal that failed before sending
// anything (local): the RFC's minimum between retransmissions is about
// the server, which heard nothing.
const localRetry = time.Second

// local reports a renewal that failed on this side: namespace or link
// missing, or the link not configured yet (no address or route to the
// server: Docker configures the container's link after Join, and a
// loaded host can take longer than T1), so nothing was sent.
func local(err error) bool {
	return errors.Is(err, dhcpapi.ErrBadRequest) || errors.Is(err, errLinkGone) ||
		errors.Is(err, syscall.ENETUNREACH) || errors.Is(err, errAddrNotAvail)
}

// renewOnce sends one REQUEST (with its retransmissions) and records the
// ACK; done reports a renewed lease. quiet: a local failure was logged
// already.
func (m *Manager) renewOnce(ctx context.Context, r *Record, rebinding bool, phaseEnd time.Time, quiet bool) (done bool, err error) {
	l, err := r.lease()
	if err != nil {
		return false, err
	}
	actx, cancel := context.WithDeadline(ctx, phaseEnd)
	defer cancel()
	nl, err := renew(actx, r.Netns, r.link(), r.identity(), l, rebinding)
	if err != nil {
		if ctx.Err() == nil && !(quiet && local(err)) {
			m.log.Warn("dhcp renewal failed", "network", r.Key.Network, "container", r.Key.ContainerID, "ifname", r.Key.IfName, "rebinding", rebinding, "err", err)
		}
		return false, err
	}
	if !nl.ACK.YourIPAddr.Equal(l.ACK.YourIPAddr) {
		// RFC 2131 allows no new address on a renewal: treat as lost.
		m.expire(r, errors.New("the server renewed with another address"))
		return false, errors.New("address changed")
	}
	nr := *r
	nr.Offer, nr.ACK, nr.Bound = nl.Offer.ToBytes(), nl.ACK.ToBytes(), nl.CreationTime
	// Written before it counts: a crash after the ACK and before the
	// write loses only this renewal's extension, never the lease.
	if err := m.st.Put(&nr); err != nil {
		m.log.Error("dhcp renewal not recorded", "container", r.Key.ContainerID, "err", err)
		return false, err
	}
	m.setRecord(&nr)
	m.log.Info("dhcp lease renewed", "network", r.Key.Network, "container", r.Key.ContainerID, "ifname", r.Key.IfName, "address", nl.ACK.YourIPAddr, "expires", leaseTimes(nl.ACK, nl.CreationTime).expiry)
	return true, nil
}

// expire ends r's lease on our side: the address comes off the link
// (nothing squats on an address without a lease) and the record stays,
// marked expired, with the link's routes (they go with the address) to
// put back if the address is regained (regain.go), until DEL or GC.
func (m *Manager) expire(r *Record, why error) {
	nr := *r
	nr.State = dhcpapi.StateExpired
	if l, err := r.lease(); err == nil {
		if p, err := address(l.ACK); err == nil {
			routes, err := takeOff(r.Netns, r.link(), p)
			if err != nil {
				m.log.Error("dhcp expired address not removed", "container", r.Key.ContainerID, "address", p, "err", err)
			}
			nr.Routes = routes
		}
	}
	if err := m.st.Put(&nr); err != nil {
		m.log.Error("dhcp expiry not recorded", "container", r.Key.ContainerID, "err", err)
	}
	m.setRecord(&nr)
	m.log.Warn("dhcp lease expired; address removed from the container", "network", r.Key.Network, "container", r.Key.ContainerID, "ifname", r.Key.IfName, "why", why)
}
