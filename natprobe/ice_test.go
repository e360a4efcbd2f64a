package natprobe

import (
	"errors"
	"strings"
	"testing"
)

func rep(nat bool, mapping, filtering string, remaps *bool) *Report {
	r := &Report{NATPresent: nat, Mapping: mapping, Filtering: filtering, UnsolicitedInboundRemaps: remaps}
	decide(r)
	return r
}

func TestPredict(t *testing.T) {
	open := rep(false, EndpointIndependent, EndpointIndependent, boolp(false))
	fullCone := rep(true, EndpointIndependent, EndpointIndependent, boolp(false))
	portRestricted := rep(true, EndpointIndependent, AddressAndPortDependent, boolp(false))
	docker := rep(true, EndpointIndependent, AddressAndPortDependent, boolp(true))
	symmetric := rep(true, AddressAndPortDependent, AddressAndPortDependent, nil)
	symOpen := rep(true, AddressAndPortDependent, EndpointIndependent, nil)
	unknown := rep(true, Unknown, Unknown, nil)
	blockedRep := &Report{}
	blocked(blockedRep)
	tests := []struct {
		name        string
		a, b        *Report
		wantDirect  bool
		wantOfferer string
		wantExit    int
		aFirst      bool // direct when a's checks go out first
		bFirst      bool
	}{
		{"open and symmetric", open, symmetric, true, OffererEither, 0, true, true},
		{"full cone and symmetric", fullCone, symmetric, true, OffererEither, 0, true, true},
		{"two port restricted", portRestricted, portRestricted, true, OffererEither, 0, true, true},
		{"port restricted and symmetric", portRestricted, symmetric, false, OffererNone, 3, false, false},
		{"symmetric and symmetric open filter", symmetric, symOpen, false, OffererNone, 3, false, false},
		{"docker and home nat: client offers", docker, portRestricted, true, OffererB, 0, true, false},
		{"home nat and docker", portRestricted, docker, true, OffererA, 0, false, true},
		{"two dockers", docker, docker, false, OffererNone, 3, false, false},
		{"docker and open", docker, open, true, OffererEither, 0, true, true},
		{"unknown", unknown, open, false, OffererNone, 5, false, false},
		{"blocked", blockedRep, open, false, OffererNone, 4, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Predict(tt.a, tt.b)
			if p.Direct != tt.wantDirect || p.Offerer != tt.wantOfferer || p.ExitCode() != tt.wantExit {
				t.Errorf("got direct %v offerer %q exit %d, want %v %q %d (%+v)", p.Direct, p.Offerer, p.ExitCode(), tt.wantDirect, tt.wantOfferer, tt.wantExit, p)
			}
			if p.Decided && p.TURNNeeded == p.Direct {
				t.Errorf("got turnNeeded %v with direct %v", p.TURNNeeded, p.Direct)
			}
			if p.DirectIfASendsFirst != tt.aFirst || p.DirectIfBSendsFirst != tt.bFirst {
				t.Errorf("got direct if a first %v, if b first %v, want %v %v", p.DirectIfASendsFirst, p.DirectIfBSendsFirst, tt.aFirst, tt.bFirst)
			}
			// The advice's condition is stated exactly when only one order works.
			if orderDep := tt.aFirst != tt.bFirst; p.OrderDependent != orderDep || (p.AdviceHolds != "") != orderDep || (len(p.IfNotHeld) > 0) != orderDep {
				t.Errorf("got orderDependent %v holds %q ifNot %q, want order dependence %v", p.OrderDependent, p.AdviceHolds, p.IfNotHeld, orderDep)
			}
		})
	}
}

func TestReadReport(t *testing.T) {
	good := `{"mapping":"endpoint-independent","filtering":"address-and-port-dependent","classic":"port-restricted-cone","verdict":"needs-turn","natPresent":true,"unsolicitedInboundRemaps":true,"futureField":1}`
	r, err := ReadReport(strings.NewReader(good))
	if err != nil {
		t.Fatalf("ReadReport: %v", err)
	}
	if r.UnsolicitedInboundRemaps == nil || !*r.UnsolicitedInboundRemaps || !r.NATPresent {
		t.Errorf("got %+v, want remaps and natPresent true", r)
	}
	bad := []struct{ name, in, field string }{
		{"not json", `{`, "read report"},
		{"no verdict", `{"mapping":"unknown","filtering":"unknown","classic":"unknown"}`, "verdict"},
		{"bad mapping", `{"verdict":"ok","mapping":"cone","filtering":"unknown","classic":"unknown"}`, "mapping"},
		{"bad filtering", `{"verdict":"ok","mapping":"unknown","filtering":"x","classic":"unknown"}`, "filtering"},
		{"bad classic", `{"verdict":"ok","mapping":"unknown","filtering":"unknown","classic":"x"}`, "classic"},
	}
	for _, tt := range bad {
		_, err := ReadReport(strings.NewReader(tt.in))
		if err == nil || !strings.Contains(err.Error(), tt.field) {
			t.Errorf("%s: got %v, want an error naming %q", tt.name, err, tt.field)
		}
		if tt.name != "not json" && !errors.Is(err, ErrBadReport) {
			t.Errorf("%s: got %v, want ErrBadReport", tt.name, err)
		}
	}
}
