package media_test

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/medianet/medianet/internal/janustest"
	"github.com/medianet/medianet/internal/natlab"
	"github.com/medianet/medianet/natprobe"
)

// clientKinds are the client NATs of the matrix, with the name natprobe
// check gives the same kind of client.
var clientKinds = []struct {
	kind     natlab.Kind
	natprobe string
}{
	{natlab.OneToOne, "open or full cone"},                  // endpoint-independent
	{natlab.MasqueradeDropNew, "port-restricted cone"},      // address-and-port-dependent, a home router
	{natlab.Masquerade, "port-restricted cone that remaps"}, // the same, on Linux: remaps on inbound-first
	{natlab.MasqueradeRandomFully, "symmetric"},             // symmetric
	{natlab.UDPBlocked, "UDP blocked"},                      // no UDP at all
}

func natprobeName(k natlab.Kind) string {
	for _, c := range clientKinds {
		if c.kind == k {
			return c.natprobe
		}
	}
	return k.String()
}

// The call's bounds: ICE must connect within connectWait; RTP is counted
// for mediaWindow (150 packets at 50 a second).
const (
	connectWait = 8 * time.Second
	mediaWindow = 3 * time.Second
	// serverFirstDelay is the signalling delay of the matrix's
	// client-offers calls: well past the threshold TestJanusCalls/threshold
	// measures, so Janus's checks go out first.
	serverFirstDelay = 150 * time.Millisecond
	parallelCalls    = 4
)

// cell is one call of the suite.
type cell struct {
	P     Placement
	Kind  natlab.Kind
	Mode  janustest.Mode
	Delay time.Duration
	site  *natlab.Site
	Res   janustest.Result
	Err   error
	// Regathered counts the calls repeated because Janus's offer held no
	// relay candidate (gatherTries).
	Regathered int
}

func (c *cell) name() string {
	n := fmt.Sprintf("%s/%s/%s", c.P, c.Kind, c.Mode)
	if c.Mode == janustest.ClientOffers {
		n += fmt.Sprintf("/%dms", c.Delay.Milliseconds())
	}
	if c.Regathered > 0 {
		n += fmt.Sprintf(" (called %d times: no relay candidate offered before)", c.Regathered+1)
	}
	return n
}

// observed is what the call did: direct, relay, or none.
func (c *cell) observed() string {
	switch {
	case !c.Res.Connected:
		return "none"
	case c.Res.RemoteType == "relay" || c.Res.LocalType == "relay":
		return "relay"
	}
	return "direct"
}

// clientChecksFirst: the answerer sends the first checks; a client that
// offers sends them first only when Janus's answer reaches it fast
// (below the threshold the threshold cells measure).
func (c *cell) clientChecksFirst() bool {
	return c.Mode == janustest.JanusOffers || c.Delay < serverFirstDelay
}

// predicted is natprobe check's prediction for the cell: direct, relay
// (no direct pair, and the TURN server natprobe checked relays), or
// none (no direct pair and no usable relay).
func (c *cell) predicted(rep *checkReport) string {
	o := rep.outcome(natprobeName(c.Kind))
	switch {
	case o == natprobe.OutcomeDirect,
		o == natprobe.OutcomeServerFirst && !c.clientChecksFirst(),
		o == natprobe.OutcomeClientFirst && c.clientChecksFirst():
		return "direct"
	case c.P == BridgeTURN && c.Kind != natlab.UDPBlocked && len(rep.TURN) > 0 && rep.TURN[0].Verdict == "ok":
		return "relay"
	}
	return "none"
}

// gatherTries bounds the calls of a TURN cell whose offer from Janus
// carried no relay candidate: at a load average of 50 on two cores,
// libnice's gathering once timed out (the offer held the host candidate
// only, not even the server-reflexive one), which says nothing about the
// relay path under test; the repeat is counted in the cell's name.
const gatherTries = 3

// offersRelay: Janus's SDP carried a relay candidate.
func offersRelay(r janustest.Result) bool {
	for _, c := range r.RemoteCandidates {
		if strings.Contains(c, " typ relay") {
			return true
		}
	}
	return false
}

// call runs the cells, parallelCalls at a time.
func (l *lab) call(cells []*cell) {
	sem := make(chan struct{}, parallelCalls)
	var wg sync.WaitGroup
	for _, c := range cells {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			for try := 1; ; try++ {
				c.Res, c.Err = janustest.Dial(c.site.Host.Name, janustest.Call{
					URL: l.janus[c.P].URL, Mode: c.Mode, STUN: "stun:" + l.stunAddr(),
					AnswerDelay: c.Delay, Connect: connectWait, Media: mediaWindow,
				})
				if c.P != BridgeTURN || c.Err != nil || offersRelay(c.Res) || try == gatherTries {
					return
				}
				c.Regathered++
			}
		}()
	}
	wg.Wait()
}

// thresholdDelays are the signalling delays of the threshold cells, each
// called thresholdRepeats times at once (from sites of their own).
var thresholdDelays = []time.Duration{0, 20, 40, 60, 100, 200}

const thresholdRepeats = 3

// rate is how many of a delay's calls connected.
type rate struct {
	delay            time.Duration
	calls, connected int
	connectedMs      []float64
}

func thresholdRates(cells []*cell) []rate {
	var out []rate
	for _, c := range cells {
		if len(out) == 0 || out[len(out)-1].delay != c.Delay {
			out = append(out, rate{delay: c.Delay})
		}
		r := &out[len(out)-1]
		r.calls++
		if c.Res.Connected {
			r.connected++
			r.connectedMs = append(r.connectedMs, c.Res.ConnectedMs)
		}
	}
	return out
}

// TestJanusCalls is issue 22: real calls to real Janus. It builds one lab
// and runs, in order: the matrix (every placement: the bridge, medianet
// through Docker's driver, medianet through the CNI plugin under podman,
// host networking; every client NAT and offer
// direction; natprobe check's prediction for each), the TURN fallback,
// and the signalling-delay threshold of the client-offers case behind the
// bridge. MEDIANET_MEDIA_TABLE=FILE writes the measured tables there.
func TestJanusCalls(t *testing.T) {
	var cells []*cell
	for _, p := range []Placement{Bridge, Medianet, CNI, HostNet} {
		for _, k := range clientKinds {
			cells = append(cells, &cell{P: p, Kind: k.kind, Mode: janustest.JanusOffers},
				&cell{P: p, Kind: k.kind, Mode: janustest.ClientOffers, Delay: serverFirstDelay})
		}
	}
	for _, k := range []natlab.Kind{natlab.MasqueradeDropNew, natlab.MasqueradeRandomFully, natlab.UDPBlocked} {
		cells = append(cells, &cell{P: BridgeTURN, Kind: k, Mode: janustest.JanusOffers})
	}
	var threshold []*cell
	for _, d := range thresholdDelays {
		for range thresholdRepeats {
			threshold = append(threshold, &cell{P: Bridge, Kind: natlab.MasqueradeDropNew, Mode: janustest.ClientOffers, Delay: d * time.Millisecond})
		}
	}
	all := append(append([]*cell{}, cells...), threshold...)
	l, sites := newLab(t, len(all), func(i int) natlab.Kind { return all[i].Kind })
	for i, c := range all {
		c.site = sites[i]
	}
	l.startAll(t)
	for _, p := range []Placement{Medianet, CNI, HostNet, Bridge, BridgeTURN} {
		l.check(t, l.janus[p])
	}
	l.call(cells)
	for i := 0; i < len(threshold); i += thresholdRepeats { // one delay at a time
		l.call(threshold[i : i+thresholdRepeats])
	}
	report := l.report(cells, threshold)
	t.Log("\n" + report)
	if out := os.Getenv("MEDIANET_MEDIA_TABLE"); out != "" {
		if err := os.WriteFile(out, []byte(report), 0o644); err != nil {
			t.Error(err)
		}
	}
	t.Run("calls", func(t *testing.T) { checkCalls(t, cells) })
	t.Run("natprobe-agrees", func(t *testing.T) { l.checkPredictions(t, cells) })
	t.Run("seed", func(t *testing.T) { checkSeed(t, cells) })
	t.Run("turn", func(t *testing.T) { checkTURN(t, l, cells) })
	t.Run("threshold", func(t *testing.T) { checkThreshold(t, threshold) })
}

// startAll runs a Janus per placement.
func (l *lab) startAll(t *testing.T) {
	t.Helper()
	docs, err := docsJanusSections()
	if err != nil {
		t.Fatal(err)
	}
	stun := fmt.Sprintf("\tstun_server = %q\n\tstun_port = %d\n", l.turn.Addr().Addr(), l.turn.Addr().Port())
	bridge := "media: {\n\trtp_port_range = \"20000-20199\"\n}\nnat: {\n" + stun + "\tice_enforce_list = \"eth0\"\n}\n"
	turn := "media: {\n\trtp_port_range = \"21000-21199\"\n}\nnat: {\n\tnice_debug = true\n" + stun + "\tice_enforce_list = \"eth0\"\n" +
		fmt.Sprintf("\tturn_server = %q\n\tturn_port = %d\n\tturn_type = \"udp\"\n\tturn_user = %q\n\tturn_pwd = %q\n}\n",
			l.turn.Addr().Addr(), l.turn.Addr().Port(), turnUser, turnPassword)
	hostCfg := "media: {\n\trtp_port_range = \"30000-30199\"\n}\nnat: {\n\tice_enforce_list = \"" + "lan0" + "\"\n}\n"
	hostIP := l.host.Addr
	net := l.medianetNetwork(t)
	l.startJanus(t, Bridge, janustest.Config{HTTPPort: 8088, Sections: bridge}, hostIP, "--network", "bridge", "-p", "8088:8088")
	l.startJanus(t, BridgeTURN, janustest.Config{HTTPPort: 8090, Sections: turn}, hostIP, "--network", "bridge", "-p", "8090:8090")
	l.startJanus(t, HostNet, janustest.Config{HTTPPort: 8089, Sections: hostCfg}, hostIP, "--network", "host")
	l.startJanus(t, Medianet, janustest.Config{HTTPPort: 8088, Sections: docs}, medianetJanus, "--network", net, "--ip", medianetJanus.String())
	l.startCNIJanus(t, janustest.Config{HTTPPort: 8088, Sections: docs})
}

// report is the markdown of every cell: prediction against observation.
func (l *lab) report(cells, threshold []*cell) string {
	var b strings.Builder
	b.WriteString("| Janus | natprobe check: NAT | mapping | filtering | remaps | verdict |\n|---|---|---|---|---|---|\n")
	for _, p := range []Placement{Bridge, Medianet, CNI, HostNet, BridgeTURN} {
		r := l.janus[p].Check
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", p, r.Probe.Classic, r.Probe.Mapping, r.Probe.Filtering, boolOr(r.Probe.Remaps), r.Verdict)
	}
	b.WriteString("\n")
	b.WriteString("| Janus | client NAT | offer | natprobe check (outcome for this client) | predicted | observed | selected pair | connected after | RTP received | loss |\n|---|---|---|---|---|---|---|---|---|---|\n")
	for _, c := range cells {
		rep := l.janus[c.P].Check
		fmt.Fprintf(&b, "| %s | %s | %s | %s: %s | %s | %s | %s | %s | %d | %s |\n", c.P, c.Kind, offerer(c), rep.Verdict,
			rep.outcome(natprobeName(c.Kind)), c.predicted(rep), c.observed(), c.Res.Pair(), msOr(c.Res.Connected, c.Res.ConnectedMs),
			c.Res.Packets, lossOr(c))
	}
	b.WriteString("\n| signalling delay (client offers, Janus on the bridge, client behind masq-drop-new) | calls connected | connected after |\n|---|---|---|\n")
	for _, r := range thresholdRates(threshold) {
		fmt.Fprintf(&b, "| %d ms | %d of %d | %v ms |\n", r.delay.Milliseconds(), r.connected, r.calls, r.connectedMs)
	}
	return b.String()
}

func offerer(c *cell) string {
	if c.Mode == janustest.JanusOffers {
		return "Janus (Streaming)"
	}
	return fmt.Sprintf("client (EchoTest), answer held %d ms", c.Delay.Milliseconds())
}

func msOr(ok bool, v float64) string {
	if !ok {
		return "-"
	}
	return fmt.Sprintf("%.0f ms", v)
}

func lossOr(c *cell) string {
	if c.Res.Expected == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*c.Res.Loss)
}

func boolOr(b *bool) string {
	if b == nil {
		return "null"
	}
	return fmt.Sprint(*b)
}
