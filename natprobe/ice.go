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
// sides x and y? ok is false when a side is unknown or blocked.
func direct(x, y string) (d, ok bool) {
	if x == sideUnknown || y == sideUnknown || x == sideBlocked || y == sideBlocked {
		return false, false
	}
	if x == sideOpen || y == sideOpen {
		return true, true
	}
	// Both endpoint-independent (one filtering APDF) still meet; a side
	// whose mapping varies reaches only an EIM side with open filtering.
	return x == sideEIMAPDF && y == sideEIMAPDF, true
}

// Predict says whether a direct ICE pair will form between a and b and
// which side should send the offer. The answerer sends the first checks,
// so the offerer is the side that receives first.
func Predict(a, b *Report) Prediction {
	p := Prediction{A: sideOf(a, false), B: sideOf(b, false), Offerer: OffererNone}
	aOffers, okA := direct(sideOf(a, true), sideOf(b, false))
	bOffers, okB := direct(sideOf(a, false), sideOf(b, true))
	p.Decided = okA && okB
	switch {
	case !p.Decided:
		p.Reasons = append(p.Reasons, fmt.Sprintf("side classes a=%s b=%s leave the answer unknown", p.A, p.B))
		if p.A == sideBlocked || p.B == sideBlocked {
			p.TURNNeeded = true
			p.Reasons = append(p.Reasons, "UDP is blocked on one side: TURN over TCP/TLS is needed")
		}
		return p
	case aOffers && bOffers:
		p.Offerer = OffererEither
	case aOffers:
		p.Offerer = OffererA
		p.Reasons = append(p.Reasons, "b remaps its port when a peer's packet arrives first: b must be the answerer (it sends first)")
	case bOffers:
		p.Offerer = OffererB
		p.Reasons = append(p.Reasons, "a remaps its port when a peer's packet arrives first: a must be the answerer (it sends first)")
	}
	p.Direct = aOffers || bOffers
	p.TURNNeeded = !p.Direct
	if p.TURNNeeded {
		p.Reasons = append(p.Reasons, fmt.Sprintf("a=%s and b=%s: a mapping that varies by destination meets address-and-port-dependent filtering; deploy TURN", p.A, p.B))
	}
	return p
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
