package natprobe_test

import (
	"strconv"
	"testing"

	"github.com/medianet/medianet/internal/natlab"
	"github.com/medianet/medianet/natprobe"
)

// want is what a probe must report for one NAT; "" skips a field.
type want struct {
	natPresent                  bool
	mapping, filtering, classic string
	portPreserved               string // "true", "false" or ""
	hairpin, remaps             string // "true", "false", "null" or ""
	verdict                     string
	exit                        int
}

func (w want) check(t *testing.T, r *natprobe.Report, code int) {
	t.Helper()
	fields := []struct{ name, got, want string }{
		{"natPresent", strconv.FormatBool(r.NATPresent), strconv.FormatBool(w.natPresent)},
		{"mapping", r.Mapping, w.mapping},
		{"filtering", r.Filtering, w.filtering},
		{"classic", r.Classic, w.classic},
		{"portPreserved", strconv.FormatBool(r.PortPreserved), w.portPreserved},
		{"hairpinning", bstr(r.Hairpinning), w.hairpin},
		{"unsolicitedInboundRemaps", bstr(r.UnsolicitedInboundRemaps), w.remaps},
		{"verdict", r.Verdict, w.verdict},
		{"exit", strconv.Itoa(code), strconv.Itoa(w.exit)},
	}
	for _, f := range fields {
		if f.want != "" && f.got != f.want {
			t.Errorf("%s: got %s, want %s (mapped %s local %s notes %q)", f.name, f.got, f.want, r.Mapped, r.Local, r.Notes)
		}
	}
}

var (
	wantOpen = want{false, natprobe.EndpointIndependent, natprobe.EndpointIndependent, natprobe.ClassicOpen,
		"true", "true", "false", natprobe.VerdictOK, 0}
	wantMasquerade = want{true, natprobe.EndpointIndependent, natprobe.AddressAndPortDependent, natprobe.ClassicPortRestrictedCone,
		"true", "false", "true", natprobe.VerdictNeedsTURN, 3}
	wantRandomFully = want{true, natprobe.AddressAndPortDependent, natprobe.AddressAndPortDependent, natprobe.ClassicSymmetric,
		"", "", "null", natprobe.VerdictNeedsTURN, 3}
	wantDropNew = want{true, natprobe.EndpointIndependent, natprobe.AddressAndPortDependent, natprobe.ClassicPortRestrictedCone,
		"true", "false", "false", natprobe.VerdictNeedsTURN, 3}
	wantFullCone = want{true, natprobe.EndpointIndependent, natprobe.EndpointIndependent, natprobe.ClassicFullCone,
		"true", "", "false", natprobe.VerdictOK, 0}
	wantRestricted = want{true, natprobe.EndpointIndependent, natprobe.AddressDependent, natprobe.ClassicRestrictedCone,
		"true", "", "false", natprobe.VerdictOK, 0}
	wantBlocked = want{false, natprobe.Unknown, natprobe.Unknown, natprobe.ClassicUDPBlocked,
		"", "null", "null", natprobe.VerdictBlocked, 4}
)

func TestProbeLinuxNATs(t *testing.T) {
	tests := []struct {
		name  string
		kind  natlab.Kind
		extra []string
		want  want
	}{
		{"no nat", natlab.NoNAT, nil, wantOpen},
		{"masquerade", natlab.Masquerade, nil, wantMasquerade},
		{"masquerade from media port", natlab.Masquerade, []string{"--local-port", "40000"}, wantMasquerade},
		{"masquerade random-fully", natlab.MasqueradeRandomFully, nil, wantRandomFully},
		{"masquerade dropping unsolicited inbound", natlab.MasqueradeDropNew, nil, wantDropNew},
		{"one-to-one snat dnat", natlab.OneToOne, nil, wantFullCone},
		{"one-to-one address-dependent filtering", natlab.AddressDependent, nil, wantRestricted},
		{"udp dropped", natlab.UDPBlocked, []string{"--timeout", "2s"}, wantBlocked},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := natlab.New(t, tt.kind, 0)
			srv := serveNatprobe(t, l)
			rep, code := probe(t, l, append([]string{"--server", srv}, tt.extra...)...)
			tt.want.check(t, rep, code)
			if len(tt.extra) > 1 && tt.extra[0] == "--local-port" && rep.Local != "10.77.0.2:40000" {
				t.Errorf("local: got %s, want 10.77.0.2:40000", rep.Local)
			}
		})
	}
}

// TestProbeUnderLoss drops 25% of packets each way between NAT and server;
// every run must give the same answer as without loss.
func TestProbeUnderLoss(t *testing.T) {
	l := natlab.New(t, natlab.Masquerade, 0.25)
	srv := serveNatprobe(t, l)
	const runs = 5
	for i := range runs {
		rep, code := probe(t, l, "--server", srv)
		t.Logf("run %d: verdict %s mapping %s filtering %s remaps %s in %d ms", i, rep.Verdict, rep.Mapping, rep.Filtering, bstr(rep.UnsolicitedInboundRemaps), rep.DurationMs)
		wantMasquerade.check(t, rep, code)
	}
}

// TestProbeBindingLifetime shortens the NAT's conntrack UDP timeout to 2s
// and checks probe --lifetime brackets it.
func TestProbeBindingLifetime(t *testing.T) {
	l := natlab.New(t, natlab.Masquerade, 0)
	if _, err := natlab.In(l.NAT, "sysctl", "-qw", "net.netfilter.nf_conntrack_udp_timeout=2"); err != nil {
		t.Skipf("conntrack udp timeout not settable per namespace: %v", err)
	}
	srv := serveNatprobe(t, l)
	rep, _ := probe(t, l, "--server", srv, "--lifetime", "8s")
	least, most := rep.BindingLifetimeAtLeastMs, rep.BindingLifetimeAtMostMs
	if least == nil || most == nil || *least < 1000 || *least >= 2000 || *most < 2000 || *most > 4000 {
		t.Errorf("got lifetime at least %v at most %v ms, want the 2s timeout bracketed: at least in [1000,2000), at most in [2000,4000] (notes %q)",
			bstr64(least), bstr64(most), rep.Notes)
	}
}

func bstr64(v *int64) string {
	if v == nil {
		return "null"
	}
	return strconv.FormatInt(*v, 10)
}

// TestProbeIPv6 runs the same NATs over IPv6 (ip6tables).
func TestProbeIPv6(t *testing.T) {
	for _, tt := range basicNATs {
		t.Run(tt.name, func(t *testing.T) {
			l := natlab.New(t, tt.kind, 0)
			startInNS(t, l.Server, []string{"[fd18::10]:3478", "[fd18::11]:3479"},
				natprobeBin(), "serve", "--primary", "[fd18::10]:3478", "--alternate", "[fd18::11]:3479")
			rep, code := probe(t, l, "--server", "[fd18::10]:3478")
			tt.want.check(t, rep, code)
		})
	}
}

// TestProbeTwoPlainServers gives two single-address servers (RFC 5780
// section 6: no OTHER-ADDRESS): mapping comes from comparing them,
// filtering stays unknown.
func TestProbeTwoPlainServers(t *testing.T) {
	tests := []struct {
		name    string
		kind    natlab.Kind
		mapping string
		classic string
		varies  string
		verdict string
		exit    int
	}{
		{"masquerade", natlab.Masquerade, natprobe.EndpointIndependent, natprobe.ClassicUnknown, "false", natprobe.VerdictUnknown, 5},
		{"random-fully", natlab.MasqueradeRandomFully, natprobe.Unknown, natprobe.ClassicSymmetric, "true", natprobe.VerdictNeedsTURN, 3},
		{"no nat", natlab.NoNAT, natprobe.EndpointIndependent, natprobe.ClassicOpen, "false", natprobe.VerdictOK, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := natlab.New(t, tt.kind, 0)
			for _, a := range []string{"198.18.0.10:3478", "198.18.0.11:3478"} {
				startInNS(t, l.Server, []string{a}, natprobeBin(), "serve", "--primary", a)
			}
			rep, code := probe(t, l, "--server", "198.18.0.10:3478", "--server", "198.18.0.11:3478")
			w := want{natPresent: tt.kind != natlab.NoNAT, mapping: tt.mapping, filtering: natprobe.Unknown,
				classic: tt.classic, remaps: "null", verdict: tt.verdict, exit: tt.exit}
			if tt.kind == natlab.NoNAT {
				w.remaps = ""
			}
			w.check(t, rep, code)
			if rep.RFC5780 {
				t.Errorf("rfc5780: got true, want false from single-address servers")
			}
			if got := bstr(rep.MappingVariesByDestination); got != tt.varies {
				t.Errorf("mappingVariesByDestination: got %s, want %s", got, tt.varies)
			}
		})
	}
}
