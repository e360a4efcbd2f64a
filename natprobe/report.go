package natprobe

// Behaviour values for Report.Mapping and Report.Filtering (RFC 4787).
const (
	EndpointIndependent     = "endpoint-independent"
	AddressDependent        = "address-dependent"
	AddressAndPortDependent = "address-and-port-dependent"
	Unknown                 = "unknown"
)

// Classic RFC 3489 names for Report.Classic.
const (
	ClassicOpen               = "open"
	ClassicFullCone           = "full-cone"
	ClassicRestrictedCone     = "restricted-cone"
	ClassicPortRestrictedCone = "port-restricted-cone"
	ClassicSymmetric          = "symmetric"
	ClassicUDPBlocked         = "udp-blocked"
	ClassicUnknown            = "unknown"
)

// Verdicts for Report.Verdict.
const (
	VerdictOK        = "ok"
	VerdictNeedsTURN = "needs-turn"
	VerdictBlocked   = "blocked"
	// VerdictUnknown means the servers given could not decide (for example
	// one server without RFC 5780 behind a NAT). An addition to the contract (docs/design.md).
	VerdictUnknown = "unknown"
)

// Report is the result of a probe; its JSON form is the contract of
// docs/design.md (fields may be added, never renamed).
type Report struct {
	Server      string `json:"server"`
	Local       string `json:"local"`
	Mapped      string `json:"mapped"`
	NATPresent  bool   `json:"natPresent"`
	Mapping     string `json:"mapping"`
	Filtering   string `json:"filtering"`
	Hairpinning *bool  `json:"hairpinning"`
	// PortPreserved is true when the mapped port equals the local port.
	PortPreserved bool   `json:"portPreserved"`
	Classic       string `json:"classic"`
	RFC5780       bool   `json:"rfc5780"`
	DurationMs    int64  `json:"durationMs"`
	// UnsolicitedInboundRemaps is nil when the test could not run.
	UnsolicitedInboundRemaps *bool    `json:"unsolicitedInboundRemaps"`
	Verdict                  string   `json:"verdict"`
	Advice                   []string `json:"advice"`

	// Additions to the object of docs/design.md.
	// OtherAddress is the server's OTHER-ADDRESS, empty without RFC 5780.
	OtherAddress string `json:"otherAddress,omitempty"`
	// MappingVariesByDestination is set when mapping was told from several
	// servers: true when the mapped address changed with the destination.
	MappingVariesByDestination *bool `json:"mappingVariesByDestination,omitempty"`
	// ALG is true when MAPPED-ADDRESS and XOR-MAPPED-ADDRESS differ: a
	// device on the path rewrites addresses inside packets.
	ALG bool `json:"alg,omitempty"`
	// BindingLifetimeAtLeastMs and BindingLifetimeAtMostMs bound how long
	// an idle binding lives (probe --lifetime); AtMost is absent when the
	// binding outlived every wait tested.
	BindingLifetimeAtLeastMs *int64 `json:"bindingLifetimeAtLeastMs,omitempty"`
	BindingLifetimeAtMostMs  *int64 `json:"bindingLifetimeAtMostMs,omitempty"`
	// RTTMs is the largest round-trip time to the server measured on
	// replies to requests sent once; the probe's waits are sized from it.
	RTTMs float64 `json:"rttMs,omitempty"`
	// Notes record evidence that left a result unknown (lost replies, a
	// server ignoring CHANGE-REQUEST, a wrong RESPONSE-ORIGIN).
	Notes []string `json:"notes,omitempty"`
}

// ExitCode maps a verdict to the natprobe exit code: 0 ok, 3 needs-turn,
// 4 blocked, 5 unknown.
func ExitCode(verdict string) int {
	switch verdict {
	case VerdictOK:
		return 0
	case VerdictNeedsTURN:
		return 3
	case VerdictBlocked:
		return 4
	}
	return 5
}

func boolp(b bool) *bool { return &b }
