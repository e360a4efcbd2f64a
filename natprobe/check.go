package natprobe

// Client outcomes (ClientOutcome.Outcome).
const (
	OutcomeDirect      = "direct"                       // in either check order
	OutcomeServerFirst = "direct-if-server-sends-first" // the server must answer
	OutcomeClientFirst = "direct-if-client-sends-first" // the server must offer
	OutcomeTURN        = "turn"
	OutcomeUndecided   = "unknown"
)

// ClientOutcome is what a direct ICE session between the probed server and
// one typical kind of client NAT would do.
type ClientOutcome struct {
	Client     string     `json:"client"`
	Examples   string     `json:"examples"`
	Outcome    string     `json:"outcome"`
	Prediction Prediction `json:"prediction"`
}

// typicalClient is a kind of client NAT, as a probe report would say it.
type typicalClient struct {
	name, examples string
	rep            Report
}

// clientUDPBlocked is the typical client whose UDP is blocked.
const clientUDPBlocked = "UDP blocked"

// typicalClients are the client NATs a media server meets most.
var typicalClients = []typicalClient{
	{"open or full cone", "a public IP, a 1:1 NAT", Report{Mapping: EndpointIndependent, Filtering: EndpointIndependent, NATPresent: true}},
	{"restricted cone", "address-dependent filtering", Report{Mapping: EndpointIndependent, Filtering: AddressDependent, NATPresent: true}},
	{"port-restricted cone", "most home routers", Report{Mapping: EndpointIndependent, Filtering: AddressAndPortDependent, NATPresent: true, UnsolicitedInboundRemaps: boolp(false)}},
	{"port-restricted cone that remaps", "Linux routers, Docker's NAT", Report{Mapping: EndpointIndependent, Filtering: AddressAndPortDependent, NATPresent: true, UnsolicitedInboundRemaps: boolp(true)}},
	{"symmetric", "mobile carriers' CGNAT, MASQUERADE --random-fully", Report{Mapping: AddressAndPortDependent, Filtering: AddressAndPortDependent, NATPresent: true}},
	{clientUDPBlocked, "strict corporate firewalls", Report{}},
}

// CheckReport is natprobe check's summary: the probe, what a direct
// session would do with each typical client NAT, the TURN checks, the
// worst finding's verdict and exit code, and what to change.
type CheckReport struct {
	Probe    *Report         `json:"probe"`
	Clients  []ClientOutcome `json:"clients"`
	TURN     []*TURNReport   `json:"turn"`
	Verdict  string          `json:"verdict"`
	ExitCode int             `json:"exitCode"`
	Changes  []string        `json:"changes"`
	// Summary says in one sentence with whom ICE works, directly or
	// through the TURN servers checked (an addition).
	Summary string `json:"summary"`
}

// severity orders exit codes from best to worst finding: ok, needs-turn,
// unknown, blocked or unreachable, refused, relay-failed.
var severity = map[int]int{0: 0, 3: 1, 5: 2, 4: 3, 6: 4, 7: 5}

// Summarize builds the check report from a probe and TURN checks.
func Summarize(probe *Report, turns []*TURNReport) *CheckReport {
	c := &CheckReport{Probe: probe, TURN: turns, Clients: []ClientOutcome{}, Changes: []string{}}
	if c.TURN == nil {
		c.TURN = []*TURNReport{}
	}
	for _, tc := range typicalClients {
		rep := tc.rep
		if tc.name == clientUDPBlocked {
			blocked(&rep)
		} else {
			decide(&rep)
		}
		p := predict(probe, &rep, "this server", "the client")
		c.Clients = append(c.Clients, ClientOutcome{Client: tc.name, Examples: tc.examples, Outcome: outcomeOf(p), Prediction: p})
	}
	c.Verdict, c.ExitCode = probe.Verdict, ExitCode(probe.Verdict)
	for _, t := range turns {
		if code := TURNExitCode(t.Verdict); severity[code] > severity[c.ExitCode] {
			c.Verdict, c.ExitCode = "turn-"+t.Verdict, code
		}
	}
	f := findTURN(turns)
	c.Changes = changes(probe, c.Clients, turns, f)
	c.Summary = summary(probe, c.Clients, f)
	return c
}

// outcomeOf reads a prediction with the server as a and the client as b.
func outcomeOf(p Prediction) string {
	switch {
	case !p.Decided:
		return OutcomeUndecided
	case p.DirectIfASendsFirst && p.DirectIfBSendsFirst:
		return OutcomeDirect
	case p.DirectIfASendsFirst:
		return OutcomeServerFirst
	case p.DirectIfBSendsFirst:
		return OutcomeClientFirst
	}
	return OutcomeTURN
}

func dedup(in []string) []string {
	seen := map[string]bool{}
	out := in[:0]
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
