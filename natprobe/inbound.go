package natprobe

import (
	"net/netip"
	"time"

	"github.com/pion/stun/v3"
)

// inboundBurst is how many CHANGE-REQUESTs the inbound-first test sends,
// asking the server to answer from its other address before the socket
// itself sends there. One answer reaching the NAT is enough; with 25% loss
// each way the chance that none does is 0.44^inboundBurst (under 0.2%).
const inboundBurst = 8

// inbound is what the inbound-first test saw: the mapping towards the
// primary, and the mapping towards the other address after that address's
// packets had arrived first. Zero values: the test could not run.
type inbound struct{ before, after netip.AddrPort }

// inboundFirst detects a NAT that picks a new public port when a peer's
// packet arrives before the first outbound one (the Linux conntrack clash
// behind "ICE fails when the container sends the offer"). A remap seen
// once is the answer; "no remap" could also mean that every answer of the
// burst was lost, so it counts only when a second fresh socket sees the
// same.
func (r *run) inboundFirst() inbound {
	if !r.other.IsValid() {
		return inbound{}
	}
	var in inbound
	for range 2 {
		in = r.inboundOnce()
		if !in.after.IsValid() || in.after != in.before {
			break
		}
	}
	return in
}

// inboundOnce runs the test once on a fresh socket: a binding to the
// primary (mapping before), a burst of CHANGE-REQUESTs whose answers come
// from the other address, then a binding to the other address (mapping
// after).
func (r *run) inboundOnce() inbound {
	c, err := r.listen(0)
	if err != nil {
		r.note("inbound-first: %v", err)
		return inbound{}
	}
	defer c.Close()
	before, ok := r.bind(c, r.primary, "inbound-first binding to the primary")
	if !ok {
		return inbound{}
	}
	req, err := stun.Build(stun.TransactionID, stun.BindingRequest, changeRequest{ip: true, port: true}, stun.Fingerprint)
	if err != nil {
		r.note("inbound-first: %v", err)
		return inbound{}
	}
	for range inboundBurst {
		if _, err := c.WriteToUDPAddrPort(req.Raw, r.primary); err != nil {
			r.note("inbound-first: send to %v: %v", r.primary, err)
			return inbound{}
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Let the last answers reach the NAT before this socket sends there.
	time.Sleep(100 * time.Millisecond)
	after, ok := r.bind(c, r.other, "inbound-first binding to the other address")
	if !ok {
		return inbound{before: before}
	}
	return inbound{before: before, after: after}
}
