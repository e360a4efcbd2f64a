package natprobe

import (
	"encoding/json"
	"fmt"
	"io"
)

// Side classes used by Predict (the rows and columns of the table in
// docs/natprobe.md).
const (
	sideOpen    = "eim-open"    // no NAT or EIM, with EIF or ADF filtering
	sideEIMAPDF = "eim-apdf"    // EIM with APDF filtering
	sideDepOpen = "varies-open" // mapping varies by destination, EIF/ADF filtering
	sideDepAPDF = "varies-apdf" // mapping varies by destination, APDF filtering
	sideBlocked = "blocked"
	sideUnknown = "unknown"
)

// Offerer values for Prediction.Offerer.
const (
	OffererEither = "either"
	OffererA      = "a"
	OffererB      = "b"
	OffererNone   = "none"
)

// Prediction says whether ICE between two probed hosts will form a direct
// pair (host or server-reflexive candidates, peer-reflexive allowed).
//
// What happens can depend on which side's connectivity checks reach the
// other's NAT first: a NAT that remaps when a peer's packet arrives first
// (unsolicitedInboundRemaps) must send first. In WebRTC the answerer
// usually checks first, since it gets the offer's candidates before the
// offerer gets the answer's; Offerer is the advice for that order, and
// AdviceHolds says what it takes.
type Prediction struct {
	A string `json:"a"` // side class of A
	B string `json:"b"`
	// Direct is true when some offer/answer role gives a direct pair.
	Direct bool `json:"direct"`
	// Offerer is which side should send the offer: either, a, b, or none
	// when no role gives a direct pair (or the evidence does not decide).
	Offerer string `json:"offerer"`
	// TURNNeeded is true when no role gives a direct pair.
	TURNNeeded bool `json:"turnNeeded"`
	// Decided is false when a report's classes leave the answer unknown.
	Decided bool     `json:"decided"`
	Reasons []string `json:"reasons"`

	// Additions to the object of docs/design.md.
	// DirectIfASendsFirst and DirectIfBSendsFirst give the outcome for
	// each check order: a's checks reach b's NAT first, or b's reach a's.
	DirectIfASendsFirst bool `json:"directIfASendsFirst"`
	DirectIfBSendsFirst bool `json:"directIfBSendsFirst"`
	// OrderDependent is true when only one check order gives a direct
	// pair: the offerer advice then holds only under AdviceHolds.
	OrderDependent bool `json:"orderDependent"`
	// AdviceHolds says when the offerer advice holds, and IfNotHeld what
	// to change when that cannot be guaranteed; both empty when the order
	// does not matter.
	AdviceHolds string   `json:"adviceHolds,omitempty"`
	IfNotHeld   []string `json:"ifNotHeld,omitempty"`
}

// ExitCode maps a prediction to the ice exit code: 0 direct, 3 TURN
// needed, 4 a side is blocked, 5 undecided.
func (p Prediction) ExitCode() int {
	switch {
	case p.A == sideBlocked || p.B == sideBlocked:
		return 4
	case !p.Decided:
		return 5
	case p.Direct:
		return 0
	}
	return 3
}

// sideOf classes a report; remapped treats a side that receives the first
// packet and remaps (unsolicitedInboundRemaps) as varying by destination.
func sideOf(r *Report, receivesFirst bool) string {
	if r.Verdict == VerdictBlocked {
		return sideBlocked
	}
	open := r.Filtering == EndpointIndependent || r.Filtering == AddressDependent ||
		(!r.NATPresent && r.Filtering != AddressAndPortDependent)
	apdf := r.Filtering == AddressAndPortDependent
	varies := r.Classic == ClassicSymmetric ||
		(receivesFirst && r.UnsolicitedInboundRemaps != nil && *r.UnsolicitedInboundRemaps)
	eim := r.Mapping == EndpointIndependent || !r.NATPresent
	switch {
	case varies && open:
		return sideDepOpen
	case varies && apdf:
		return sideDepAPDF
	case varies:
		return sideUnknown
	case eim && open:
		return sideOpen
	case eim && apdf:
		return sideEIMAPDF
	}
	return sideUnknown
}

// direct reads the table of the notes: does a direct pair form between
// sides x and y? ok is false when a side is unknown. A blocked side never
// forms a direct pair.
func direct(x, y string) (d, ok bool) {
	switch {
	case x == sideUnknown || y == sideUnknown:
		return false, false
	case x == sideBlocked || y == sideBlocked:
		return false, true
	case x == sideOpen || y == sideOpen:
		return true, true
	}
	// Both endpoint-independent (one filtering APDF) still meet; a side
	// whose mapping varies reaches only an EIM side with open filtering.
	return x == sideEIMAPDF && y == sideEIMAPDF, true
}

// Predict says whether a direct ICE pair will form between a and b, in
// each check order, and which side should send the offer. The side that
// receives the first checks is the one whose NAT may remap.
func Predict(a, b *Report) Prediction { return predict(a, b, "a", "b") }

// predict is Predict with the sides named an and bn in the reasons.
func predict(a, b *Report, an, bn string) Prediction {
	p := Prediction{A: sideOf(a, false), B: sideOf(b, false), Offerer: OffererNone}
	var okA, okB bool
	p.DirectIfASendsFirst, okA = direct(sideOf(a, false), sideOf(b, true))
	p.DirectIfBSendsFirst, okB = direct(sideOf(a, true), sideOf(b, false))
	p.Decided = okA && okB
	p.Direct = p.DirectIfASendsFirst || p.DirectIfBSendsFirst
	p.TURNNeeded = p.Decided && !p.Direct
	switch {
	case !p.Decided:
		p.Direct = false
		p.Reasons = append(p.Reasons, fmt.Sprintf("side classes a=%s b=%s leave the answer unknown", p.A, p.B))
		return p
	case p.A == sideBlocked || p.B == sideBlocked:
		p.Reasons = append(p.Reasons, "UDP is blocked on one side: only TURN over TCP or TLS can connect it")
		return p
	case p.DirectIfASendsFirst && p.DirectIfBSendsFirst:
		p.Offerer = OffererEither
		p.Reasons = append(p.Reasons, "a direct pair forms in either check order: either side may offer")
	case p.DirectIfBSendsFirst:
		orderAdvice(&p, an, bn)
		p.Offerer = OffererA
	case p.DirectIfASendsFirst:
		orderAdvice(&p, bn, an)
		p.Offerer = OffererB
	default:
		p.Reasons = append(p.Reasons, fmt.Sprintf("a=%s and b=%s: a mapping that varies by destination meets address-and-port-dependent filtering, in either check order; deploy TURN", p.A, p.B))
	}
	return p
}

// orderAdvice fills the reasons and conditions when only the remapping
// side r sending first (and so the other side o offering) works.
func orderAdvice(p *Prediction, o, r string) {
	p.OrderDependent = true
	p.Reasons = append(p.Reasons,
		fmt.Sprintf("%s remaps its port when a peer's packet arrives first: a direct pair forms only if %s's checks reach %s's NAT first, so %s must be the answerer and %s the offerer", r, r, o, r, o))
	p.AdviceHolds = fmt.Sprintf("%s answers and starts its checks as soon as it has the offer, and the offer already carries %s's server-reflexive candidate "+
		"(%s does not trickle its candidates, or waits for gathering to complete before it sends the offer); "+
		"if %s's checks can reach %s first (trickle ICE, a slow answer), the session fails", r, o, o, o, r)
	p.IfNotHeld = []string{
		fmt.Sprintf("remove the remap on %s's side: give %s a dedicated IP with no NAT (a medianet macvlan network), or drop unsolicited inbound UDP on %s's NAT box: iptables -I INPUT -i <wan> -p udp -m conntrack --ctstate NEW -j DROP", r, r, r),
		fmt.Sprintf("give %s a fixed public port (a DNAT port forward such as docker run -p 10000:10000/udp) and announce it; with it %s may also run ICE-lite", r, r),
		adviceRelay,
	}
}

// ReadReport reads one probe report (the JSON of probe --json) and checks
// the fields ice relies on.
func ReadReport(r io.Reader) (*Report, error) {
	var rep Report
	dec := json.NewDecoder(io.LimitReader(r, 1<<20))
	if err := dec.Decode(&rep); err != nil {
		return nil, fmt.Errorf("natprobe: read report: %w", err)
	}
	if err := checkReport(&rep); err != nil {
		return nil, err
	}
	return &rep, nil
}

func checkReport(r *Report) error {
	behaviours := map[string]bool{EndpointIndependent: true, AddressDependent: true, AddressAndPortDependent: true, Unknown: true}
	verdicts := map[string]bool{VerdictOK: true, VerdictNeedsTURN: true, VerdictBlocked: true, VerdictUnknown: true}
	classics := map[string]bool{ClassicOpen: true, ClassicFullCone: true, ClassicRestrictedCone: true,
		ClassicPortRestrictedCone: true, ClassicSymmetric: true, ClassicUDPBlocked: true, ClassicUnknown: true}
	switch {
	case !verdicts[r.Verdict]:
		return fmt.Errorf("natprobe: report field verdict %q: want ok, needs-turn, blocked or unknown (run natprobe probe --json): %w", r.Verdict, ErrBadReport)
	case !behaviours[r.Mapping]:
		return fmt.Errorf("natprobe: report field mapping %q: want endpoint-independent, address-dependent, address-and-port-dependent or unknown: %w", r.Mapping, ErrBadReport)
	case !behaviours[r.Filtering]:
		return fmt.Errorf("natprobe: report field filtering %q: want endpoint-independent, address-dependent, address-and-port-dependent or unknown: %w", r.Filtering, ErrBadReport)
	case !classics[r.Classic]:
		return fmt.Errorf("natprobe: report field classic %q: want one of open, full-cone, restricted-cone, port-restricted-cone, symmetric, udp-blocked, unknown: %w", r.Classic, ErrBadReport)
	}
	return nil
}
