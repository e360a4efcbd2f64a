package media_test

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/medianet/medianet/internal/dockertest"
	"github.com/medianet/medianet/internal/janustest"
	"github.com/medianet/medianet/internal/natlab"
)

// BenchmarkFirstRTP is issue 22's measurement: for Janus on a medianet
// network, Janus with host networking (the seed's alternative) and, as
// the control, Janus on Docker's built-in macvlan driver, in the same run
// and the same lab, the time from docker run to the first RTP
// packet at a client behind a home router's NAT (masq-drop-new; Janus
// offers, Streaming), and the loss and jitter of benchMedia of RTP at 50
// packets a second. Each iteration starts and removes every container.
func BenchmarkFirstRTP(b *testing.B) {
	l, sites := newLab(b, 3, func(int) natlab.Kind { return natlab.MasqueradeDropNew })
	docs, err := docsJanusSections()
	if err != nil {
		b.Fatal(err)
	}
	net := l.medianetNetwork(b)
	// Docker's own macvlan driver on the same parent and subnet is the
	// control that tells medianet's share from Docker's: both give Janus
	// a network namespace and a LAN address; host networking gives none.
	builtin := "media-macvlan"
	l.host.MustDocker(b, "network", "create", "-d", "macvlan", "--subnet", lanPrefix.String(),
		"--gateway", lanRouterLAN.Addr().String(), "-o", "parent="+dockertest.Parent, builtin)
	b.Cleanup(func() { l.host.Docker("network", "rm", builtin) })
	runs := []struct {
		p     Placement
		cfg   janustest.Config
		url   string
		flags []string
		site  *natlab.Site
	}{
		{Medianet, janustest.Config{HTTPPort: 8088, Sections: docs}, fmt.Sprintf("http://%s:8088/janus", medianetJanus),
			[]string{"--network", net, "--ip", medianetJanus.String()}, sites[0]},
		{dockerMacvlan, janustest.Config{HTTPPort: 8090, Sections: docs}, fmt.Sprintf("http://%s:8090/janus", macvlanJanus),
			[]string{"--network", builtin, "--ip", macvlanJanus.String()}, sites[2]},
		{HostNet, janustest.Config{HTTPPort: 8089, Sections: "media: {\n\trtp_port_range = \"30000-30199\"\n}\nnat: {\n\tice_enforce_list = \"lan0\"\n}\n"},
			fmt.Sprintf("http://%s:8089/janus", l.host.Addr), []string{"--network", "host"}, sites[1]},
	}
	sum := map[Placement]*[4]float64{Medianet: {}, dockerMacvlan: {}, HostNet: {}}
	for b.Loop() {
		for _, r := range runs {
			first, ran, res := l.firstRTP(b, r.cfg, r.url, r.site, r.flags)
			s := sum[r.p]
			s[0] += first
			s[1] += res.Loss
			s[2] += res.JitterMs
			s[3] += ran
			b.Logf("%s: first RTP %.0f ms after docker run; %d packets in %v, loss %.2f%%, jitter %.2f ms, pair %s",
				r.p, first, res.Packets, benchMedia, 100*res.Loss, res.JitterMs, res.Pair())
		}
	}
	for p, s := range sum {
		b.ReportMetric(s[0]/float64(b.N), string(p)+"-first-rtp-ms")
		b.ReportMetric(100*s[1]/float64(b.N), string(p)+"-loss-%")
		b.ReportMetric(s[2]/float64(b.N), string(p)+"-jitter-ms")
		b.ReportMetric(s[3]/float64(b.N), string(p)+"-docker-run-ms")
	}
}

const benchMedia = 10 * time.Second

// dockerMacvlan is Janus on Docker's built-in macvlan driver, the bench's
// control (not a placement of the call tests), at macvlanJanus.
const dockerMacvlan Placement = "docker-macvlan"

var macvlanJanus = netip.MustParseAddr("10.239.0.101")

// firstRTP runs Janus with cfg, calls it from site as soon as its API
// answers, and returns the time from docker run to the first RTP packet
// and the time docker run took (both in ms), with the call's result; the
// container is removed before it returns.
func (l *lab) firstRTP(b *testing.B, cfg janustest.Config, url string, site *natlab.Site, flags []string) (first, ran float64, _ janustest.Result) {
	dir := b.TempDir()
	if err := cfg.Write(dir); err != nil {
		b.Fatal(err)
	}
	args := append(append([]string{"run", "-d", "--label", "medianet-test=1"}, flags...), "-v", dir+":"+janustest.ConfDir+":ro", janustest.Image)
	start := time.Now()
	id := l.host.MustDocker(b, args...)
	took := time.Since(start)
	defer l.host.Docker("rm", "-f", id)
	deadline := time.Now().Add(30 * time.Second)
	for janustest.Ready(site.Host.Name, url) != nil {
		if time.Now().After(deadline) {
			b.Fatalf("janus at %s did not answer within 30s", url)
		}
	}
	dial := time.Now()
	b.Logf("%s: docker run returned after %v, the HTTP API answered after %v", url, took.Round(time.Millisecond), dial.Sub(start).Round(time.Millisecond))
	res, err := janustest.Dial(site.Host.Name, janustest.Call{URL: url, Mode: janustest.JanusOffers,
		STUN: "stun:" + l.stunAddr(), Connect: connectWait, Media: benchMedia})
	if err != nil || res.Error != "" || !res.Connected {
		b.Fatalf("call to %s: %v %s (connected %t)", url, err, res.Error, res.Connected)
	}
	return float64(dial.Sub(start).Milliseconds()) + res.FirstRTPMs, float64(took.Milliseconds()), res
}
