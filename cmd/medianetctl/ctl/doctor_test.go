package ctl

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"

	"github.com/medianet/medianet/doctor"
)

// The doctor's verdicts against a real LAN are tested in doctor/ and,
// through the binary, in test/doctor; these pin the command line.

func TestDoctorUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"doctor"}, "--parent is required"},
		{[]string{"doctor", "--parent", "eth9", "extra"}, "--parent is required"},
		{[]string{"doctor", "--parent", "eth9", "--gateway", "not-an-ip"}, `"not-an-ip" is not an IP address`},
		{[]string{"doctor", "--parent", "eth9", "--vlan", "5000"}, "vlan 5000"},
		{[]string{"doctor", "--parent", "eth9", "--gateway", "10.0.0.1", "--gateway", "10.0.0.2"}, "at most one per address family"},
		{[]string{"doctor", "--nope"}, "flag provided but not defined"},
	} {
		_, errOut, code := run(t, tc.args...)
		if code != ExitUsage || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d mentioning %q", tc.args, code, errOut, ExitUsage, tc.want)
		}
	}
}

func TestPrintReport(t *testing.T) {
	no, yes := false, true
	r := doctor.Report{Parent: "eth1", Link: "eth1", MTU: 1500, TestMAC: "02:00:00:00:00:01", Verdict: doctor.Dropped, ExitCode: 3,
		Reason: "targets answer", Advice: []string{"VMware: forged transmits"},
		Targets: []doctor.Target{
			{Address: netip.MustParseAddr("10.0.0.1"), Role: "gateway", Verdict: doctor.Dropped, ParentMACAnswered: true, AnsweredBy: "52:54:00:00:00:01"},
			{Address: netip.MustParseAddr("10.0.0.2"), Role: "peer", Verdict: doctor.MTUMismatch, TestMACAnswered: true, FullSizeAnswered: &no, AnsweredBy: "52:54:00:00:00:02"},
			{Address: netip.MustParseAddr("10.0.0.3"), Role: "peer", Verdict: doctor.Pass, TestMACAnswered: true, FullSizeAnswered: &yes},
			{Address: netip.MustParseAddr("10.0.0.4"), Role: "peer", Verdict: doctor.NoAnswer},
		}}
	var out bytes.Buffer
	printReport(&out, r)
	for _, want := range []string{
		"eth1: dropped (exit 3)",
		"gateway 10.0.0.1: dropped (answered only the parent's own MAC, from 52:54:00:00:00:01)",
		"peer 10.0.0.2: mtu-mismatch (answered the new MAC from 52:54:00:00:00:02 in 0.0 ms); a 1514-byte frame got no answer",
		"peer 10.0.0.4: no-answer (answered neither",
		"- VMware: forged transmits",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}
