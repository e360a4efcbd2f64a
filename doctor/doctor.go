package doctor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Verdict is what the doctor found, worst first in Report.Verdict.
type Verdict string

// The verdicts.
const (
	// Pass: frames from a new MAC reach every target and come back.
	Pass Verdict = "pass"
	// Dropped: a target answers the parent's own MAC but not a new one.
	Dropped Verdict = "dropped"
	// ParentMissing: no link of that name in the namespace.
	ParentMissing Verdict = "parent-missing"
	// ParentDown: the parent is administratively down.
	ParentDown Verdict = "parent-down"
	// NoCarrier: the parent is up but has no carrier (cable, peer down).
	NoCarrier Verdict = "no-carrier"
	// NoAnswer: a target answered neither the new MAC nor the parent's.
	NoAnswer Verdict = "no-answer"
	// MTUMismatch: small frames from the new MAC are answered, frames as
	// large as the link's MTU are not.
	MTUMismatch Verdict = "mtu-mismatch"
)

// Exit codes of `medianetctl doctor`, per verdict (docs/design.md).
const (
	ExitPass    = 0
	ExitDropped = 3
	ExitParent  = 4
	ExitNoReply = 5
	ExitMTU     = 6
)

// ExitCode is v's exit code for scripts.
func (v Verdict) ExitCode() int {
	switch v {
	case Pass:
		return ExitPass
	case Dropped:
		return ExitDropped
	case ParentMissing, ParentDown, NoCarrier:
		return ExitParent
	case NoAnswer:
		return ExitNoReply
	case MTUMismatch:
		return ExitMTU
	}
	return 1
}

// severity orders target verdicts: the report takes the worst.
var severity = map[Verdict]int{Pass: 0, MTUMismatch: 1, NoAnswer: 2, Dropped: 3}

// Sentinel errors, matched with errors.Is.
var (
	// ErrNoTarget: no gateway or peer given and no default route via the
	// parent to take the gateway from.
	ErrNoTarget = errors.New("nothing to ask")
	// ErrNoVLAN: the kernel cannot create 802.1q links.
	ErrNoVLAN = errors.New("kernel cannot create 802.1q links (CONFIG_VLAN_8021Q / module 8021q missing): load it with modprobe 8021q")
	// ErrInvalid: an option is out of range; the message names it.
	ErrInvalid = errors.New("invalid option")
)

// Options say what to check.
type Options struct {
	// HostNS is the namespace holding the parent, by path; "" is the
	// caller's.
	HostNS string
	// Parent is the parent (master) interface, e.g. "eth1".
	Parent string
	// VLAN, when set, tests the 802.1q link "<parent>.<vlan>": the
	// existing one in HostNS, else a temporary one inside the doctor's
	// namespace.
	VLAN int
	// Gateways are asked (one per family at most); when empty, the
	// gateways of the default routes via the tested link.
	Gateways []netip.Addr
	// Peers are other nodes' addresses, asked as the gateways are.
	Peers []netip.Addr
	// Timeout is how long to wait for a target's answer (default 2s); a
	// failing IPv6 target takes twice as long (test, then control).
	Timeout time.Duration
	// Probes is how many probes are sent in Timeout's first half
	// (default 3).
	Probes int
}

// Target is one address asked, with what answered.
type Target struct {
	Address netip.Addr `json:"address"`
	Role    string     `json:"role"` // "gateway" or "peer"
	Verdict Verdict    `json:"verdict"`
	// TestMACAnswered: the target answered the probe from the new MAC.
	TestMACAnswered bool `json:"testMACAnswered"`
	// ParentMACAnswered: it answered the probe from the parent's own MAC
	// (asked only when the new MAC got no answer, for IPv6).
	ParentMACAnswered bool `json:"parentMACAnswered"`
	// AnsweredBy is the MAC that answered.
	AnsweredBy string `json:"answeredBy,omitempty"`
	// FullSizeAnswered: an ARP probe padded to the link's MTU was answered
	// too (IPv4 only, asked when the small one was).
	FullSizeAnswered *bool `json:"fullSizeAnswered,omitempty"`
	// RTTMs is the time to the test MAC's answer, in milliseconds.
	RTTMs float64 `json:"rttMs,omitempty"`
}

// Report is the doctor's result (`medianetctl doctor --json`).
type Report struct {
	Parent     string   `json:"parent"`
	VLAN       int      `json:"vlan,omitempty"`
	Link       string   `json:"link"` // the link tested: the parent or its VLAN link
	MTU        int      `json:"mtu,omitempty"`
	TestMAC    string   `json:"testMAC,omitempty"`
	Verdict    Verdict  `json:"verdict"`
	ExitCode   int      `json:"exitCode"`
	Reason     string   `json:"reason"`
	Targets    []Target `json:"targets"`
	Advice     []string `json:"advice,omitempty"`
	DurationMs int64    `json:"durationMs"`
}

func (o *Options) defaults() error {
	if o.Parent == "" {
		return fmt.Errorf("doctor: parent is empty: %w: name the interface macvlan links go on", ErrInvalid)
	}
	if o.VLAN < 0 || o.VLAN > 4094 {
		return fmt.Errorf("doctor: vlan %d: %w: use 1..4094", o.VLAN, ErrInvalid)
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Second
	}
	if o.Probes <= 0 {
		o.Probes = 3
	}
	seen := map[bool]bool{}
	for _, g := range append(append([]netip.Addr(nil), o.Gateways...), o.Peers...) {
		if !g.IsValid() || g.Is4In6() || g.IsMulticast() || g.IsUnspecified() {
			return fmt.Errorf("doctor: address %q: %w: give a unicast IPv4 or IPv6 address", g, ErrInvalid)
		}
	}
	for _, g := range o.Gateways {
		if seen[g.Is4()] {
			return fmt.Errorf("doctor: gateway %s: %w: at most one per address family", g, ErrInvalid)
		}
		seen[g.Is4()] = true
	}
	return nil
}

// Run checks opts.Parent and returns the report. An error means the check
// could not be made (bad options, no 802.1q, no permission), not a
// finding: findings are verdicts.
func Run(ctx context.Context, opts Options) (Report, error) {
	start := time.Now()
	if err := opts.defaults(); err != nil {
		return Report{}, err
	}
	r := Report{Parent: opts.Parent, VLAN: opts.VLAN, Link: opts.Parent, Targets: []Target{}}
	lab, verdict, err := setUp(opts)
	if err != nil {
		return Report{}, err
	}
	defer lab.close()
	if verdict != "" {
		r.Link = lab.linkName
		r.finish(verdict, start)
		return r, nil
	}
	r.Link, r.MTU, r.TestMAC = lab.linkName, lab.mtu, lab.test.mac.String()
	targets, err := lab.targets(opts)
	if err != nil {
		return Report{}, err
	}
	r.Targets = make([]Target, len(targets))
	var wg sync.WaitGroup
	errs := make([]error, len(targets))
	for i := range targets {
		wg.Go(func() { r.Targets[i], errs[i] = lab.ask(ctx, opts, targets[i]) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return Report{}, err
	}
	worst := Pass
	for _, t := range r.Targets {
		if severity[t.Verdict] > severity[worst] {
			worst = t.Verdict
		}
	}
	r.finish(worst, start)
	return r, nil
}

func (r *Report) finish(v Verdict, start time.Time) {
	r.Verdict, r.ExitCode = v, v.ExitCode()
	r.Reason, r.Advice = explain(r, v)
	r.DurationMs = time.Since(start).Milliseconds()
}

// explain says what v means for r and what to change.
func explain(r *Report, v Verdict) (string, []string) {
	switch v {
	case Pass:
		return fmt.Sprintf("frames from a new MAC on %s reach every target and come back", r.Link), nil
	case ParentMissing:
		return fmt.Sprintf("no interface %q in this namespace", r.Link),
			[]string{"fix the master/parent setting, or create the interface"}
	case ParentDown:
		return fmt.Sprintf("%s is administratively down", r.Link),
			[]string{fmt.Sprintf("bring it up: ip link set %s up", r.Link)}
	case NoCarrier:
		return fmt.Sprintf("%s is up but has no carrier", r.Link),
			[]string{"check the cable, the switch port, or the far end of the virtual link (veth peer, vNIC connected)"}
	case Dropped:
		return fmt.Sprintf("targets answer %s's own MAC but not a new one: the network drops frames from MACs it did not assign", r.Link),
			[]string{
				"VMware: set Promiscuous mode, MAC address changes and Forged transmits to Accept on the port group (or use MAC learning on a distributed switch)",
				"clouds (AWS, GCP, Azure): the VPC delivers only frames of the MAC it gave the vNIC; turning off the source/destination check (or enabling IP forwarding) lets the instance carry other IPs but never other MACs: use ipvlan, or secondary IPs on the vNIC through the cloud's CNI; OpenStack: port security off or allowed-address-pairs with the MACs",
				"Wi-Fi and MAC-locked switch ports (port security) accept one MAC per port: use a wired port without port security, ipvlan, or a bridge with routing",
			}
	case NoAnswer:
		return "a target answered neither a new MAC nor the parent's own: it is absent, on another segment or VLAN, or ignores RFC 5227 probes",
			[]string{"check the --gateway/--peer addresses and the VLAN; a gateway that ignores probes can be checked with --peer naming a Linux host on the LAN instead"}
	case MTUMismatch:
		return fmt.Sprintf("small frames from a new MAC pass, frames of %s's MTU (%d) do not reach a target", r.Link, r.MTU),
			[]string{fmt.Sprintf("set the network's mtu below the LAN's (\"mtu\" in the CNI config, -o com.docker.network.driver.mtu), or raise the LAN's to %d; confirm with ping -M do -s SIZE", r.MTU)}
	}
	return string(v), nil
}

// newMAC returns a random unicast, locally administered MAC.
func newMAC(random func([]byte) (int, error)) (net.HardwareAddr, error) {
	mac := make(net.HardwareAddr, 6)
	if _, err := random(mac); err != nil {
		return nil, fmt.Errorf("doctor: random MAC: %w", err)
	}
	mac[0] = mac[0]&0xfc | 0x02
	return mac, nil
}
