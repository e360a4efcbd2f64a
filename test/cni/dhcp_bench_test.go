package cni_test

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/medianet/medianet/internal/dhcptest"
	"github.com/medianet/medianet/internal/nstest"
)

// refDHCP is the reference CNI dhcp plugin's daemon (`dhcp daemon`),
// listening on its own socket.
type refDHCP struct {
	socket string
	cmd    *exec.Cmd
	done   chan struct{}
}

func startRefDHCP(tb testing.TB, socket string) *refDHCP {
	tb.Helper()
	skipWithoutRef(tb, "dhcp", "macvlan")
	_ = os.Remove(socket)
	d := &refDHCP{socket: socket, cmd: exec.Command(filepath.Join(refPlugins, "dhcp"), "daemon", "-socketpath", socket), done: make(chan struct{})}
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := d.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	go func() { _ = d.cmd.Wait(); close(d.done) }()
	tb.Cleanup(func() { d.kill() })
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(socket); err == nil {
			return d
		}
		time.Sleep(20 * time.Millisecond)
	}
	tb.Fatalf("reference dhcp daemon: no socket %s after 10s", socket)
	return nil
}

func (d *refDHCP) kill() {
	_ = d.cmd.Process.Kill()
	<-d.done
}

// dhcpBench is one LAN with a server, medianet's agent and the reference
// daemon, and both plugins' configurations for it.
type dhcpBench struct {
	srv       *dhcptest.Server
	agent     *dhcptest.Agent
	ref       *refDHCP
	ours, rfc inv
	dataDir   string
	refSock   string
}

func newDHCPBench(b *testing.B, kind string, cfg dhcptest.Config) *dhcpBench {
	b.Helper()
	nstest.SkipUnlessRoot(b)
	dhcptest.Skip(b, kind)
	skipWithoutRef(b, "dhcp", "macvlan")
	// Plugins run in the root namespace (no nsenter in the timing); the
	// master is a veth end the benchmark made there, never eth0.
	lan := nstest.NewRootLAN(b, "mncD")
	d := &dhcpBench{dataDir: b.TempDir()}
	d.refSock = filepath.Join(b.TempDir(), "dhcp.sock")
	d.srv = dhcptest.Start(b, kind, lan, cfg)
	d.agent = dhcptest.StartAgent(b, bins, d.dataDir)
	d.ref = startRefDHCP(b, d.refSock)
	ours, _ := json.Marshal(map[string]any{"cniVersion": "1.0.0", "name": "dhcpbench", "type": "medianet", "master": lan.Master,
		"ipam": map[string]any{"type": "medianet-ipam", "dataDir": d.dataDir, "dhcp": map[string]any{}}})
	ref, _ := json.Marshal(map[string]any{"cniVersion": "1.0.0", "name": "dhcpbench", "type": "macvlan", "master": lan.Master,
		"ipam": map[string]any{"type": "dhcp", "daemonSocketPath": d.refSock}})
	d.ours = inv{host: nstest.Root(), conf: ours}
	d.rfc = inv{host: nstest.Root(), plugin: filepath.Join(refPlugins, "macvlan"), conf: ref}
	return d
}

// timedAdd runs ADD and returns its wall time and the leased address.
func timedAdd(b *testing.B, i inv, cid, netns string) (time.Duration, string) {
	b.Helper()
	i.verb, i.cid, i.netns = "ADD", cid, netns
	start := time.Now()
	c := i.run(b)
	d := time.Since(start)
	if c.Exit != 0 {
		b.Fatalf("ADD %s: %v", cid, c)
	}
	return d, parseResult(b, c).IPs[0].Address
}

func del(b *testing.B, i inv, cid, netns string) {
	b.Helper()
	i.verb, i.cid, i.netns = "DEL", cid, netns
	i.mustRun(b)
}

// BenchmarkDHCPAdd execs ADD (then DEL, untimed) of one container in
// DHCP mode, interleaving medianet (plugin, node agent) and the reference
// macvlan with the reference dhcp IPAM and its daemon, against the same
// server in the same run. Metrics: ms per ADD of each and their ratio.
func BenchmarkDHCPAdd(b *testing.B) {
	for _, kind := range dhcptest.Kinds {
		b.Run(kind, func(b *testing.B) {
			cfg := dhcpConfig(kind, 81)
			cfg.Lease, cfg.T1, cfg.T2 = 600*time.Second, 300*time.Second, 500*time.Second
			d := newDHCPBench(b, kind, cfg)
			var ours, ref time.Duration
			n := 0
			for i := 0; b.Loop(); i++ {
				ctr := nstest.NewNS(b, "mncc")
				cid := fmt.Sprintf("dbench-%d", i)
				t, _ := timedAdd(b, d.ours, cid, ctr.Path)
				ours += t
				del(b, d.ours, cid, ctr.Path)
				t, _ = timedAdd(b, d.rfc, cid, ctr.Path)
				ref += t
				del(b, d.rfc, cid, ctr.Path)
				n++
			}
			b.ReportMetric(float64(ours.Milliseconds())/float64(n), "medianet-ms/add")
			b.ReportMetric(float64(ref.Milliseconds())/float64(n), "reference-ms/add")
			b.ReportMetric(float64(ours)/float64(ref), "medianet/reference")
		})
	}
}

// BenchmarkDHCPDaemonRestart records what a restart of the lease keeper
// does to a live lease, for medianet's agent and the reference daemon
// side by side (kea, 8 s leases, T1 2 s): each takes a lease, both
// daemons are killed and started again, and the server's database says
// whether the lease was renewed before its end. Metrics: 1 renewed, 0
// lost (the container keeps an address the server no longer leases).
func BenchmarkDHCPDaemonRestart(b *testing.B) {
	cfg := dhcpConfig(dhcptest.Kea, 82)
	d := newDHCPBench(b, dhcptest.Kea, cfg)
	ctrO, ctrR := nstest.NewNS(b, "mncc"), nstest.NewNS(b, "mncc")
	_, addrO := timedAdd(b, d.ours, "restart-ours", ctrO.Path)
	_, addrR := timedAdd(b, d.rfc, "restart-ref", ctrR.Path)
	d.agent.Stop(syscall.SIGKILL)
	d.ref.kill()
	if err := d.agent.Start(); err != nil {
		b.Fatal(err)
	}
	d.ref = startRefDHCP(b, d.refSock)
	renewed := func(addr string) float64 {
		p := parsePrefix(b, addr)
		first, ok, err := d.srv.LeaseOf(p.Addr())
		if err != nil || !ok {
			b.Fatalf("server has no lease of %s: %v", addr, err)
		}
		// Renewed: the server's end of the lease moved within one lease time.
		err = d.srv.WaitLease(p.Addr(), cfg.Lease, func(l dhcptest.Lease, ok bool) bool { return ok && l.Expires.After(first.Expires) })
		if err != nil {
			return 0
		}
		return 1
	}
	ours, ref := renewed(addrO), renewed(addrR)
	for b.Loop() {
	}
	b.ReportMetric(ours, "medianet-renewed-after-restart")
	b.ReportMetric(ref, "reference-renewed-after-restart")
	if ours != 1 {
		b.Errorf("medianet's lease of %s was not renewed after the agent's restart", addrO)
	}
	if got, ok := linkAddrs(b, ctrR, "eth0"); ok && ref == 0 {
		b.Logf("reference: the lease of %s was not renewed after its daemon's restart; the container still carries %v", addrR, got)
	}
}

func parsePrefix(tb testing.TB, s string) netip.Prefix {
	tb.Helper()
	p, err := netip.ParsePrefix(s)
	if err != nil {
		tb.Fatalf("address %q: %v", s, err)
	}
	return p
}
