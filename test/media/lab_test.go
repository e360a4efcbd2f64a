package media_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/medianet/medianet/internal/coturntest"
	"github.com/medianet/medianet/internal/dockertest"
	"github.com/medianet/medianet/internal/janustest"
	"github.com/medianet/medianet/internal/natlab"
	"github.com/medianet/medianet/internal/nstest"
)

// The lab's addresses. The Docker host (dockertest's node1, 10.239.0.1)
// sits on a LAN whose router forwards without NAT to natlab's internet,
// where coturn (STUN and TURN) runs and the clients' NAT routers sit.
var (
	lanRouterLAN  = netip.MustParsePrefix("10.239.0.254/24")
	lanRouterWAN  = netip.MustParsePrefix("198.18.250.1/16")
	lanPrefix     = netip.MustParsePrefix("10.239.0.0/24")
	medianetJanus = netip.MustParseAddr("10.239.0.100")
	turnUser      = "janus"
	turnPassword  = "medianet-test"
)

// Placement is where Janus runs.
type Placement string

const (
	Bridge     Placement = "bridge"      // Docker's default bridge (MASQUERADE), STUN for its srflx
	Medianet   Placement = "medianet"    // a medianet network: its own LAN address, docs/media-servers.md's config
	CNI        Placement = "cni"         // the same through the CNI plugin, under podman
	HostNet    Placement = "host"        // --network host, the seed's workaround
	BridgeTURN Placement = "bridge+turn" // the bridge with coturn as Janus's TURN server
)

// lab is one world: the Docker host, coturn, and a Janus per placement.
type lab struct {
	world  *natlab.World
	hosts  *dockertest.Hosts
	host   *dockertest.Host
	router *nstest.NS // the LAN's router, also where the harness checks Janus answers
	turn   *coturntest.Server
	janus  map[Placement]*janusC
	pwFile string
}

// janusC is a running Janus container.
type janusC struct {
	Placement Placement
	ID        string
	URL       string // its HTTP API as clients reach it
	Netns     string // its network namespace, for natprobe --netns
	Check     *checkReport
}

func (l *lab) stunAddr() string { return l.turn.Addr().String() }

// newLab builds everything but the Janus containers; sites are added by
// kinds (one per cell) before the LAN is attached to the world, so that
// every site router routes to it.
func newLab(t testing.TB, sites int, kinds func(i int) natlab.Kind) (*lab, []*natlab.Site) {
	t.Helper()
	janustest.Require(t)
	dockertest.RequireHosts(t)
	coturntest.Require(t)
	l := &lab{world: natlab.NewWorld(t), janus: map[Placement]*janusC{}}
	internetDefaultRoute(t, l.world.Server)
	var ss []*natlab.Site
	for i := range sites {
		ss = append(ss, l.world.AddSite(t, kinds(i)))
	}
	l.turn = coturntest.Start(t, l.world.Server.Name, coturntest.Options{
		IPs: []netip.Addr{natlab.ServerIP1, natlab.ServerIP2}, Users: map[string]string{turnUser: turnPassword}})
	l.hosts = dockertest.NewHosts(t, 1)
	l.host = l.hosts.Hosts[0]
	l.router = l.hosts.LAN.Host
	nstest.AddAddrs(t, l.router, l.hosts.LAN.Master, lanRouterLAN)
	if err := l.router.Sysctl("net.ipv4.ip_forward", "1"); err != nil {
		t.Fatal(err)
	}
	l.world.Attach(t, l.router, "wan0", lanRouterWAN, lanPrefix)
	if out, err := l.host.NS.Exec("ip", "route", "add", "default", "via", lanRouterLAN.Addr().String()); err != nil {
		t.Fatalf("default route of %s: %v: %s", l.host.Name, err, out)
	}
	if err := janustest.Import(t.TempDir(), "-H", "unix://"+l.host.Socket); err != nil {
		t.Fatal(err)
	}
	l.pwFile = filepath.Join(t.TempDir(), "turn-password")
	if err := os.WriteFile(l.pwFile, []byte(turnPassword), 0o600); err != nil {
		t.Fatal(err)
	}
	return l, ss
}

// medianetNetwork starts medianetd on the Docker host and creates the
// medianet network on the host's LAN interface.
func (l *lab) medianetNetwork(t testing.TB) string {
	t.Helper()
	l.host.StartMedianetd(t, filepath.Join(binDir(t), "medianetd"))
	name := "media"
	l.host.MustDocker(t, "network", "create", "-d", "medianet", "--ipam-driver", "medianet",
		"--subnet", lanPrefix.String(), "--gateway", lanRouterLAN.Addr().String(), "-o", "parent="+dockertest.Parent, name)
	t.Cleanup(func() { l.host.Docker("network", "rm", name) })
	return name
}

// startJanus runs Janus with cfg and the docker run flags, waits until its
// HTTP API answers from the LAN's router, and records it.
func (l *lab) startJanus(t *testing.T, p Placement, cfg janustest.Config, addr netip.Addr, flags ...string) *janusC {
	t.Helper()
	dir := t.TempDir()
	if err := cfg.Write(dir); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"run", "-d", "--label", "medianet-test=1"}, flags...)
	args = append(args, "-v", dir+":"+janustest.ConfDir+":ro", janustest.Image)
	id := l.host.MustDocker(t, args...)
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := l.host.Docker("logs", "--tail", "40", id)
			t.Logf("janus %s log:\n%s", p, out)
		}
		l.host.Docker("rm", "-f", id)
	})
	j := &janusC{Placement: p, ID: id, URL: fmt.Sprintf("http://%s:%d/janus", addr, cfg.HTTPPort)}
	if p == HostNet {
		j.Netns = l.host.NS.Path
	} else {
		pid, err := l.host.Docker("inspect", "-f", "{{.State.Pid}}", id)
		if err != nil {
			t.Fatal(err)
		}
		j.Netns = "/proc/" + pid + "/ns/net"
	}
	l.await(t, j, l.router.Name, func() string {
		out, _ := l.host.Docker("logs", "--tail", "40", id)
		return out
	})
	return j
}

// await waits until j's HTTP API answers from namespace from, and records
// j; logs returns the tail of Janus's log for the failure message.
func (l *lab) await(t *testing.T, j *janusC, from string, logs func() string) {
	t.Helper()
	err := dockertest.WaitFor(30*time.Second, func() error {
		return janustest.Ready(from, j.URL)
	})
	if err != nil {
		t.Fatalf("janus %s: %s/info does not answer: %v\n%s", j.Placement, j.URL, err, logs())
	}
	l.janus[j.Placement] = j
}

// checkReport is the part of natprobe check --json the suite reads.
type checkReport struct {
	Verdict string `json:"verdict"`
	Probe   struct {
		Classic   string `json:"classic"`
		Local     string `json:"local"`
		Mapped    string `json:"mapped"`
		Mapping   string `json:"mapping"`
		Filtering string `json:"filtering"`
		Remaps    *bool  `json:"unsolicitedInboundRemaps"`
	} `json:"probe"`
	Clients []struct {
		Client  string `json:"client"`
		Outcome string `json:"outcome"`
	} `json:"clients"`
	TURN []struct {
		Verdict string `json:"verdict"`
	} `json:"turn"`
}

// outcome is natprobe's outcome for a client kind.
func (c *checkReport) outcome(client string) string {
	for _, o := range c.Clients {
		if o.Client == client {
			return o.Outcome
		}
	}
	return "missing"
}

// check runs natprobe check in the Janus container's namespace, with the
// lab's coturn as STUN server and (for TURN placements) TURN server.
func (l *lab) check(t *testing.T, j *janusC) *checkReport {
	t.Helper()
	args := []string{"check", "--netns", j.Netns, "--server", l.stunAddr(), "--json"}
	if j.Placement == BridgeTURN {
		args = append(args, "--turn", "turn:"+l.stunAddr(), "--user", turnUser, "--password-file", l.pwFile)
	}
	out, err := exec.Command(filepath.Join(binDir(t), "natprobe"), args...).Output()
	var ee *exec.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.ExitCode() >= 3) {
		t.Fatalf("natprobe %s: %v: %s", strings.Join(args, " "), err, out)
	}
	var rep checkReport
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("natprobe check in %s: %v: %s", j.Placement, err, out)
	}
	j.Check = &rep
	t.Logf("natprobe check in %s (%s):\n%s", j.Placement, j.Netns, out)
	return &rep
}

// The sink's link: the server's default route points at sinkGW, in a
// namespace that drops every IPv4 packet it is given.
var (
	sinkServer = netip.MustParsePrefix("169.254.77.1/30")
	sinkGW     = netip.MustParsePrefix("169.254.77.2/30")
)

// internetDefaultRoute gives the server namespace (coturn's) a default
// route into a sink, where packets are dropped without an error coming
// back, as a server on the internet drops what it sends to a client's
// private host candidate somewhere upstream. Without it sendto fails with
// ENETUNREACH (natlab routes no private prefix), and coturn 4.6.1 closes
// the whole allocation on a relay socket's send error: Janus's check from
// its relay to the client's host candidate (10.77.0.x) took the relay
// down before the check to the client's server-reflexive address could
// succeed ("closed (2nd stage) ... reason: general" in coturn's log right
// after "SEND processed", then libnice's "Retransmissions failed" on
// every relay pair).
func internetDefaultRoute(t testing.TB, server *nstest.NS) {
	t.Helper()
	sink := nstest.NewNS(t, "npxk")
	if err := nstest.Veth(server, "sink0", sink, "in0"); err != nil {
		t.Fatal(err)
	}
	nstest.AddAddrs(t, server, "sink0", sinkServer)
	nstest.AddAddrs(t, sink, "in0", sinkGW)
	if out, err := sink.Exec("iptables", "-t", "raw", "-A", "PREROUTING", "-j", "DROP"); err != nil {
		t.Fatalf("the sink drops everything: %v: %s", err, out)
	}
	if out, err := server.Exec("ip", "route", "add", "default", "via", sinkGW.Addr().String()); err != nil {
		t.Fatalf("default route of %s: %v: %s", server, err, out)
	}
}
