package natprobe

import (
	"net/netip"
	"sync"
)

// inboundBurst is how many CHANGE-REQUESTs the inbound-first test sends,
// asking the server to answer from its other address before the socket
// itself sends there. One answer reaching the NAT is enough; with 25% loss
// each way the chance that none of two sockets' bursts does is
// 0.4375^(2*inboundBurst), under one in a million.
const inboundBurst = 8

// inbound is what the inbound-first test saw: the mapping towards the
// primary, and the mapping towards the other address after that address's
// packets had arrived first. Zero values: the test could not run.
type inbound struct{ before, after netip.AddrPort }

// inboundFirst detects a NAT that picks a new public port when a peer's
// packet arrives before the first outbound one (the Linux conntrack clash
// behind "ICE fails when the container sends the offer"). It runs on two
// fresh sockets at once: a remap seen on either is the answer; "no remap"
// could also mean that every answer of a burst was lost, so it counts
// only when both sockets see it.
func (r *run) inboundFirst() inbound {
	if !r.other.IsValid() {
		return inbound{}
	}
	var in [2]inbound
	var wg sync.WaitGroup
	for i := range in {
		wg.Add(1)
		go func() { defer wg.Done(); in[i] = r.inboundOnce() }()
	}
	wg.Wait()
	for _, x := range in {
		if x.after.IsValid() && x.after != x.before {
			return x
		}
	}
	if in[0].after.IsValid() && in[1].after.IsValid() {
		return in[0]
	}
	return inbound{before: in[0].before}
}

// inboundOnce runs the test once on a fresh socket: a binding to the
// primary (mapping before), a burst of CHANGE-REQUESTs whose answers come
// from the other address, a wait of about one round trip so that they
// reach the NAT, then a binding to the other address (mapping after).
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
	req, err := newRequest(changeRequest{ip: true, port: true})
	if err != nil {
		r.note("inbound-first: %v", err)
		return inbound{}
	}
	burst := silentTest{
		sends: inboundBurst,
		send:  func() error { _, err := c.WriteToUDPAddrPort(req.Raw, r.primary); return err },
		watch: c,
	}
	if _, err := burst.run(r.schedule(), r.end); err != nil {
		r.note("inbound-first: send to %v: %v", r.primary, err)
		return inbound{}
	}
	after, ok := r.bind(c, r.other, "inbound-first binding to the other address")
	if !ok {
		return inbound{before: before}
	}
	return inbound{before: before, after: after}
}
