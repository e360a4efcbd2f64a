package natprobe

import (
	"errors"
	"net"
	"net/netip"
	"sync"

	"github.com/pion/stun/v3"
)

// mapping is RFC 5780 section 4.3 on s0, which has so far sent only test
// I: test II to the alternate IP and primary port, test III to the
// alternate IP and port. Without OTHER-ADDRESS it compares the mapped
// address across the other servers given.
func (r *run) mapping(s0 *net.UDPConn, mapped netip.AddrPort, rep *Report) {
	rep.Mapping = Unknown
	if r.other.IsValid() {
		m2, ok2 := r.bind(s0, netip.AddrPortFrom(r.other.Addr(), r.primary.Port()), "mapping test II")
		if !ok2 {
			return
		}
		if m2 == mapped {
			rep.Mapping = EndpointIndependent
			return
		}
		m3, ok3 := r.bind(s0, r.other, "mapping test III")
		switch {
		case !ok3:
		case m3 == m2:
			rep.Mapping = AddressDependent
		default:
			rep.Mapping = AddressAndPortDependent
		}
		return
	}
	var varies, samePortOnly, answered bool
	for _, srv := range r.p.Servers {
		if srv == r.primary {
			continue
		}
		m, ok := r.bind(s0, srv, "mapping binding")
		if !ok {
			continue
		}
		answered = true
		if m != mapped {
			varies = true
			samePortOnly = samePortOnly || srv.Addr() == r.primary.Addr()
		}
	}
	switch {
	case answered && !varies:
		rep.Mapping = EndpointIndependent
		rep.MappingVariesByDestination = boolp(false)
	case varies:
		rep.MappingVariesByDestination = boolp(true)
		if samePortOnly {
			rep.Mapping = AddressAndPortDependent
		}
	case !rep.NATPresent:
		rep.Mapping = EndpointIndependent
	default:
		r.note("mapping: the server has no OTHER-ADDRESS and no second server answered; give two or more --server")
	}
}

// exchange is the retransmission of a request that should be answered,
// timed from the round-trip time measured so far.
func (r *run) exchange(late func([]byte, netip.AddrPort) bool) exchange {
	return exchange{b: r.schedule().backoff, end: r.end, late: late, rtt: &r.rtt}
}

// bind sends a plain Binding from c to dst and returns the mapped address,
// checking the reply's source and RESPONSE-ORIGIN.
func (r *run) bind(c packetConn, dst netip.AddrPort, what string) (netip.AddrPort, bool) {
	rp, err := r.exchange(nil).do(c, dst)
	if err == nil {
		err = checkSource(rp, dst)
	}
	if err != nil {
		r.note("%s to %v: %v", what, dst, err)
		return netip.AddrPort{}, false
	}
	return rp.addrs.reflexive(), true
}

// control runs the control binding after a silent phase on c: it returns
// answered when the awaited answer arrived late (before the control
// reply), ignore when the control answered first (the silence was real),
// and wrong when neither can be told.
func (r *run) control(c packetConn, st silentTest, what string) watchResult {
	var late watchResult
	rp, err := r.exchange(st.lateHook(&late)).do(c, r.primary)
	switch {
	case errors.Is(err, errLate):
		return late
	case err == nil:
		err = checkSource(rp, r.primary)
	}
	if err != nil {
		r.note("%s control to %v: %v", what, r.primary, err)
		return wrong
	}
	return ignore
}

// outcome of one filtering test.
type outcome int

const (
	undecided outcome = iota // evidence does not decide
	passed                   // the changed-source reply arrived
	filtered                 // no reply, while the control binding answered
)

// filtering is RFC 5780 section 4.4, each test on its own fresh socket so
// neither biases the other: test II asks for a reply from the other IP and
// port, test III from the other port only.
func (r *run) filtering() string {
	if !r.other.IsValid() {
		r.note("filtering: the server has no OTHER-ADDRESS (no RFC 5780); filtering cannot be told")
		return Unknown
	}
	var eif, adf outcome
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		eif = r.filterTest(changeRequest{ip: true, port: true}, r.other)
	}()
	go func() {
		defer wg.Done()
		adf = r.filterTest(changeRequest{port: true}, netip.AddrPortFrom(r.primary.Addr(), r.other.Port()))
	}()
	wg.Wait()
	switch {
	case eif == passed:
		return EndpointIndependent
	case eif == filtered && adf == passed:
		return AddressDependent
	case eif == filtered && adf == filtered:
		return AddressAndPortDependent
	}
	return Unknown
}

// filterTest runs one filtering test on a fresh socket: test I, then the
// CHANGE-REQUEST expecting a reply from want; silence counts only when a
// control binding answers afterwards.
func (r *run) filterTest(cr changeRequest, want netip.AddrPort) outcome {
	c, err := r.listen(0)
	if err != nil {
		r.note("filtering: %v", err)
		return undecided
	}
	defer c.Close()
	if _, ok := r.bind(c, r.primary, "filtering test I"); !ok {
		return undecided
	}
	req, err := newRequest(cr)
	if err != nil {
		r.note("filtering: %v", err)
		return undecided
	}
	what := "filtering " + crName(cr)
	st := silentTest{
		send:  func() error { _, err := c.WriteToUDPAddrPort(req.Raw, r.primary); return err },
		watch: c,
		judge: func(pkt []byte, from netip.AddrPort) watchResult {
			rp, ok := match(pkt, req.TransactionID)
			if !ok {
				return ignore
			}
			rp.from = from
			if err := checkSource(rp, want); err != nil {
				r.note("%s: %v (the server ignores CHANGE-REQUEST?)", what, err)
				return wrong
			}
			return answered
		},
	}
	switch b := r.silentOutcome(st, c, what); {
	case b == nil:
		return undecided
	case *b:
		return passed
	}
	return filtered
}

func crName(cr changeRequest) string {
	if cr.ip {
		return "change-IP-and-port"
	}
	return "change-port"
}

// newRequest builds a Binding request with setters and a FINGERPRINT.
func newRequest(setters ...stun.Setter) (*stun.Message, error) {
	return stun.Build(append([]stun.Setter{stun.TransactionID, stun.BindingRequest}, append(setters, stun.Fingerprint)...)...)
}

// sees judges a packet answered when it carries req's transaction ID
// (a request or a response: a hairpinned request arrives as sent).
func sees(req *stun.Message) func([]byte, netip.AddrPort) watchResult {
	return func(pkt []byte, _ netip.AddrPort) watchResult {
		if m, ok := decode(pkt); ok && m.TransactionID == req.TransactionID {
			return answered
		}
		return ignore
	}
}

// hairpin is RFC 5780 section 4.5: a second socket sends to the first
// socket's mapped address; hairpinning is true when the first receives it,
// false when it does not while its own binding still answers.
func (r *run) hairpin() *bool {
	h1, err := r.listen(0)
	if err != nil {
		r.note("hairpin: %v", err)
		return nil
	}
	defer h1.Close()
	h2, err := r.listen(0)
	if err != nil {
		r.note("hairpin: %v", err)
		return nil
	}
	defer h2.Close()
	m1, ok := r.bind(h1, r.primary, "hairpin binding")
	if !ok {
		return nil
	}
	req, err := newRequest()
	if err != nil {
		return nil
	}
	st := silentTest{
		send:  func() error { _, err := h2.WriteToUDPAddrPort(req.Raw, m1); return err },
		watch: h1,
		judge: sees(req),
	}
	return r.silentOutcome(st, h1, "hairpin")
}

// silentOutcome runs st and its control on watch: true when the answer
// came, false when the control answered first, nil when undecided.
func (r *run) silentOutcome(st silentTest, watch packetConn, what string) *bool {
	v, err := st.run(r.schedule(), r.end)
	if err != nil {
		r.note("%s: %v", what, err)
		return nil
	}
	if v == ignore {
		v = r.control(watch, st, what)
	}
	switch v {
	case answered:
		return boolp(true)
	case ignore:
		return boolp(false)
	}
	return nil
}
