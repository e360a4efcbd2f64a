package natprobe

import "testing"

func TestDecide(t *testing.T) {
	tru, fls := boolp(true), boolp(false)
	tests := []struct {
		name                string
		nat                 bool
		mapping, filtering  string
		varies, remaps      *bool
		wantClassic, wantVd string
	}{
		{"no nat", false, EndpointIndependent, EndpointIndependent, nil, fls, ClassicOpen, VerdictOK},
		{"no nat filtering unknown", false, EndpointIndependent, Unknown, nil, nil, ClassicOpen, VerdictOK},
		{"no nat stateful firewall", false, EndpointIndependent, AddressAndPortDependent, nil, fls, ClassicPortRestrictedCone, VerdictNeedsTURN},
		{"full cone", true, EndpointIndependent, EndpointIndependent, nil, fls, ClassicFullCone, VerdictOK},
		{"restricted", true, EndpointIndependent, AddressDependent, nil, fls, ClassicRestrictedCone, VerdictOK},
		{"port restricted", true, EndpointIndependent, AddressAndPortDependent, nil, tru, ClassicPortRestrictedCone, VerdictNeedsTURN},
		{"symmetric", true, AddressAndPortDependent, AddressAndPortDependent, nil, nil, ClassicSymmetric, VerdictNeedsTURN},
		{"address dependent mapping", true, AddressDependent, EndpointIndependent, nil, nil, ClassicSymmetric, VerdictNeedsTURN},
		{"varies by server", true, Unknown, Unknown, tru, nil, ClassicSymmetric, VerdictNeedsTURN},
		{"one server no rfc5780", true, Unknown, Unknown, nil, nil, ClassicUnknown, VerdictUnknown},
		{"eim filtering unknown", true, EndpointIndependent, Unknown, fls, nil, ClassicUnknown, VerdictUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Report{NATPresent: tt.nat, Mapping: tt.mapping, Filtering: tt.filtering,
				MappingVariesByDestination: tt.varies, UnsolicitedInboundRemaps: tt.remaps}
			decide(r)
			if r.Classic != tt.wantClassic || r.Verdict != tt.wantVd {
				t.Errorf("got classic %q verdict %q, want %q %q", r.Classic, r.Verdict, tt.wantClassic, tt.wantVd)
			}
			if r.Verdict != VerdictOK && len(r.Advice) == 0 {
				t.Errorf("got no advice for verdict %q", r.Verdict)
			}
		})
	}
}

func TestDecideRemapAdvice(t *testing.T) {
	r := &Report{NATPresent: true, Mapping: EndpointIndependent, Filtering: AddressAndPortDependent, UnsolicitedInboundRemaps: boolp(true)}
	decide(r)
	found := false
	for _, a := range r.Advice {
		found = found || a == adviceDropNew
	}
	if !found {
		t.Errorf("got advice %q, want the drop-unsolicited-inbound line", r.Advice)
	}
}

func TestExitCode(t *testing.T) {
	for v, want := range map[string]int{VerdictOK: 0, VerdictNeedsTURN: 3, VerdictBlocked: 4, VerdictUnknown: 5, "": 5} {
		if got := ExitCode(v); got != want {
			t.Errorf("ExitCode(%q): got %d, want %d", v, got, want)
		}
	}
}
