// Package dockerdhcp holds the end-to-end tests of the Docker driver's
// DHCP mode (--ipam-opt mode=dhcp): a dockerd host of the test's own
// (internal/dockertest, its own network and mount namespaces) with
// medianetd as its legacy plugin, and Debian's kea-dhcp4 and dnsmasq
// (internal/dhcptest) in a namespace of the same test LAN. No test
// touches a pre-existing interface.
package dockerdhcp

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/medianet/medianet/dhcp"
	"github.com/medianet/medianet/dhcp/dhcpapi"
	"github.com/medianet/medianet/internal/cnitest"
	"github.com/medianet/medianet/internal/dhcptest"
	"github.com/medianet/medianet/internal/dockertest"
	"github.com/medianet/medianet/internal/nstest"
)

// binDir holds medianetd: $MEDIANET_BIN, or built by TestMain.
var binDir string

func TestMain(m *testing.M) {
	os.Exit(cnitest.Main(m, &binDir, "medianetd"))
}

// lab is one Docker host with medianetd, and a DHCP server on its LAN.
type lab struct {
	host *dockertest.Host
	md   *dockertest.Medianetd
	srv  *dhcptest.Server
	cfg  dhcptest.Config
	net  string
}

// serverConfig serves part of the hosts' own subnet (the server's link
// must be in the subnet it serves); T1 is short for the renewal test, the
// lease long enough for a container start on a loaded machine (Docker
// leases before it starts the container: 30 s was not always enough).
func serverConfig() dhcptest.Config {
	p := func(s string) netip.Addr { return netip.MustParseAddr("10.239.0." + s) }
	c := dhcptest.Config{Subnet: dockertest.HostSubnet, Server: p("250"), Gateway: p("254"),
		PoolFirst: p("100"), PoolLast: p("149"), Lease: 120 * time.Second, T1: 4 * time.Second, T2: 100 * time.Second}
	return c
}

func newLab(t *testing.T, kind string) *lab {
	t.Helper()
	nstest.SkipUnlessRoot(t)
	dhcptest.Skip(t, kind)
	dockertest.RequireHosts(t)
	hs := dockertest.NewHosts(t, 1)
	l := &lab{host: hs.Hosts[0], cfg: serverConfig(), net: nstest.UniqueName("mndh")}
	l.srv = dhcptest.Start(t, kind, hs.LAN, l.cfg)
	l.md = l.host.StartMedianetd(t, filepath.Join(binDir, "medianetd"))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log (tail):\n%s", tail(l.srv.Log(), 40))
		}
	})
	l.host.MustDocker(t, "network", "create", "-d", "medianet", "--ipam-driver", "medianet",
		"--ipam-opt", "mode=dhcp", "-o", "parent="+dockertest.Parent, l.net)
	return l
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// run starts a container on the lab's network and returns its ID.
func (l *lab) run(t *testing.T, name string) string {
	t.Helper()
	return l.host.MustDocker(t, "run", "-d", "--name", name, "--network", l.net, dockertest.Image, "sleep", "600")
}

// eth0 returns the container's address and MAC, read from its kernel.
func (l *lab) eth0(t *testing.T, id string) (netip.Prefix, string) {
	t.Helper()
	out := l.host.MustDocker(t, "exec", id, "ip", "-4", "-o", "addr", "show", "eth0")
	var addr netip.Prefix
	for f := range strings.FieldsSeq(out) {
		if p, err := netip.ParsePrefix(f); err == nil {
			addr = p
		}
	}
	raw := l.host.MustDocker(t, "exec", id, "cat", "/sys/class/net/eth0/address")
	mac, err := net.ParseMAC(strings.TrimSpace(raw))
	if err != nil || !addr.IsValid() {
		t.Fatalf("eth0 of %.12s: %q, MAC %q", id, out, raw)
	}
	return addr, mac.String()
}

// leases reads medianetd's dhcp.db.
func (l *lab) leases(t *testing.T) []dhcpapi.Lease {
	t.Helper()
	ls, err := dhcp.ReadLeases(l.md.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	return ls
}

func (l *lab) leaseOf(t *testing.T, mac string) (dhcpapi.Lease, bool) {
	for _, ls := range l.leases(t) {
		if ls.MAC == mac {
			return ls, true
		}
	}
	return dhcpapi.Lease{}, false
}

// macvlans lists the macvlan links left in the host's namespace.
func (l *lab) macvlans(t *testing.T) []string {
	t.Helper()
	out, err := l.host.NS.Exec("ip", "-o", "link", "show", "type", "macvlan")
	if err != nil {
		t.Fatalf("ip link: %v: %s", err, out)
	}
	var names []string
	for line := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(line); len(f) > 1 {
			names = append(names, strings.TrimSuffix(f[1], ":"))
		}
	}
	return names
}

// TestDockerDHCP: a container on a mode=dhcp network gets its address
// from the LAN's server under its own MAC (the server's lease database
// says so, with medianet's client identifier); medianetd keeps the lease
// in dhcp.db and renews it; a medianetd restart keeps the address and
// the lease, and renewals resume; docker rm sends RELEASE (the server's
// database shows the lease ended) and leaves no lease, no link.
func TestDockerDHCP(t *testing.T) {
	for _, kind := range dhcptest.Kinds {
		t.Run(kind, func(t *testing.T) {
			l := newLab(t, kind)
			id := l.run(t, "janus-0")
			addr, mac := l.eth0(t, id)
			if !l.cfg.Subnet.Contains(addr.Addr()) || addr.Bits() != l.cfg.Subnet.Bits() {
				t.Fatalf("container address %s: want a lease of %s with its prefix length", addr, l.cfg.Subnet)
			}
			sl, ok, err := l.srv.LeaseOf(addr.Addr())
			if err != nil || !ok || !sl.Active || !strings.EqualFold(sl.MAC, mac) {
				t.Fatalf("server's lease of %s: %+v (present %v, %v); want active for the container's MAC %s", addr, sl, ok, err, mac)
			}
			if !strings.Contains(strings.ReplaceAll(sl.ClientID, ":", ""), fmt.Sprintf("%x", "medianet/docker/")) {
				t.Errorf("server's client id %q is not medianet's for a Docker endpoint", sl.ClientID)
			}
			if gw := l.host.MustDocker(t, "exec", id, "ip", "-4", "route", "show", "default"); !strings.Contains(gw, "via "+l.cfg.Gateway.String()) {
				t.Errorf("container's default route %q: want via the lease's router %s", gw, l.cfg.Gateway)
			}
			ml, ok := l.leaseOf(t, mac)
			if !ok || ml.Address != addr.String() || ml.State != dhcpapi.StateBound {
				t.Fatalf("medianetd's lease for %s: %+v (present %v); want bound %s", mac, ml, ok, addr)
			}

			// Renewal from the container's link.
			renewed := func(after time.Time) error {
				ml, ok := l.leaseOf(t, mac)
				if !ok || !ml.Bound.After(after) {
					return fmt.Errorf("%w: lease %+v (present %v) not renewed since %s", dockertest.ErrNotYet, ml, ok, after.Format(time.RFC3339Nano))
				}
				return nil
			}
			if err := dockertest.WaitFor(3*l.cfg.T1+5*time.Second, func() error { return renewed(ml.Obtained) }); err != nil {
				t.Fatal(err)
			}

			// medianetd restarts: the address and lease stay, renewals resume.
			l.md.Restart()
			restarted := time.Now()
			if err := dockertest.WaitFor(3*l.cfg.T1+5*time.Second, func() error { return renewed(restarted) }); err != nil {
				t.Fatalf("after medianetd's restart: %v", err)
			}
			if got, _ := l.eth0(t, id); got != addr {
				t.Fatalf("container address after medianetd's restart: %s, want %s", got, addr)
			}

			// docker rm: RELEASE, seen in the server's database.
			l.host.MustDocker(t, "rm", "-f", id)
			err = dockertest.WaitFor(10*time.Second, func() error {
				sl, ok, err := l.srv.LeaseOf(addr.Addr())
				if err != nil || (ok && sl.Active) {
					return fmt.Errorf("%w: server's lease of %s after docker rm: %+v (%v)", dockertest.ErrNotYet, addr, sl, err)
				}
				return nil
			})
			if err != nil {
				t.Fatalf("no RELEASE seen: %v", err)
			}
			if _, ok := l.leaseOf(t, mac); ok {
				t.Errorf("medianetd still holds the lease of %s after docker rm", mac)
			}
			if ls := l.macvlans(t); len(ls) > 0 {
				t.Errorf("macvlans left in the host namespace: %v", ls)
			}
		})
	}
}

// TestDockerDHCPNoServer: with no server on the LAN, docker run fails
// within the bound with an error naming the option, and nothing is left:
// no lease in dhcp.db, no macvlan in the host's namespace.
func TestDockerDHCPNoServer(t *testing.T) {
	l := newLab(t, dhcptest.Dnsmasq)
	if err := l.srv.Stop(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	out, err := l.host.Docker("run", "-d", "--name", "lonely", "--network", l.net, dockertest.Image, "sleep", "600")
	took := time.Since(start)
	t.Cleanup(func() { l.host.Docker("rm", "-f", "lonely") })
	if err == nil {
		t.Fatalf("docker run without a DHCP server succeeded: %s", out)
	}
	for _, want := range []string{"mode=dhcp", "no DHCPOFFER", "parent=" + dockertest.Parent} {
		if !strings.Contains(out, want) {
			t.Errorf("docker run's error does not say %q: %s", want, out)
		}
	}
	t.Logf("docker run failed after %s: %s", took.Round(time.Millisecond), out)
	if ls := l.leases(t); len(ls) > 0 {
		t.Errorf("leases left in dhcp.db: %+v", ls)
	}
	if ls := l.macvlans(t); len(ls) > 0 {
		t.Errorf("macvlans left in the host namespace: %v", ls)
	}
}

// TestDockerDHCPDockerdKilled: dockerd dies (SIGKILL) with a container on
// a mode=dhcp network and comes back; whatever Docker remembers to tell
// the plugin, the lease of the container it no longer has is given back
// (RELEASE seen by the server) and forgotten, by Docker's calls or by
// medianetd's reconcile loop.
func TestDockerDHCPDockerdKilled(t *testing.T) {
	l := newLab(t, dhcptest.Dnsmasq)
	id := l.run(t, "janus-1")
	addr, mac := l.eth0(t, id)
	if _, ok := l.leaseOf(t, mac); !ok {
		t.Fatalf("no lease for %s in dhcp.db", mac)
	}
	l.host.Kill()
	l.host.Start(t)
	err := dockertest.WaitFor(3*time.Minute, func() error {
		sl, ok, err := l.srv.LeaseOf(addr.Addr())
		if _, held := l.leaseOf(t, mac); held || err != nil || (ok && sl.Active) {
			return fmt.Errorf("%w: medianetd holds the lease: %v; server's lease of %s: %+v (%v)", dockertest.ErrNotYet, held, addr, sl, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if ls := l.macvlans(t); len(ls) > 0 {
		t.Errorf("macvlans left in the host namespace: %v", ls)
	}
}
