// Package doctor_test runs `medianetctl doctor` as users do, inside a host
// namespace whose parent is plugged into a LAN bridge with a gateway and a
// peer (internal/nstest), and checks its exit codes and JSON against each
// failure built for real: a bridge that drops unknown source MACs, a
// parent without carrier, a gateway nobody answers for, a gateway with a
// smaller MTU; and that a doctor killed mid-run leaves nothing.
package doctor_test

import (
	"bytes"
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

	"github.com/medianet/medianet/doctor"
	"github.com/medianet/medianet/internal/cnitest"
	"github.com/medianet/medianet/internal/nstest"
)

var binDir string

func TestMain(m *testing.M) {
	os.Exit(cnitest.Main(m, &binDir, "medianetctl", "medianet", "medianetd"))
}

var (
	gw4    = netip.MustParseAddr("10.89.0.254")
	gw6    = netip.MustParseAddr("fd00:89::fe")
	peer4  = netip.MustParseAddr("10.89.0.7")
	nobody = netip.MustParseAddr("10.89.0.99")
)

type world struct {
	lan           *nstest.LAN
	gateway, peer *nstest.NS
}

func newWorld(t testing.TB) *world {
	t.Helper()
	nstest.SkipUnlessRoot(t)
	lan := nstest.NewLAN(t, "mdt")
	w := &world{lan: lan}
	w.gateway = lan.AddPeer(t, netip.PrefixFrom(gw4, 24), netip.PrefixFrom(gw6, 64))
	w.peer = lan.AddPeer(t, netip.PrefixFrom(peer4, 24))
	return w
}

// doctorCmd is medianetctl doctor on the world's parent, run inside the
// host namespace (nsenter execs it, so the PID is the doctor's).
func (w *world) doctorCmd(args ...string) *exec.Cmd {
	argv := append([]string{"--net=" + w.lan.Host.Path, filepath.Join(binDir, "medianetctl"), "doctor", "--parent", w.lan.Master}, args...)
	return exec.Command("nsenter", argv...)
}

// run runs the doctor with --json and returns its report and exit code.
func (w *world) run(t testing.TB, args ...string) (doctor.Report, int) {
	t.Helper()
	cmd := w.doctorCmd(append(args, "--json")...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("medianetctl doctor: %v", err)
	}
	var r doctor.Report
	if code != 1 && code != 2 {
		if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
			t.Fatalf("doctor --json (exit %d): %v\n%s\nstderr: %s", code, err, stdout.String(), stderr.String())
		}
	} else {
		r.Reason = stderr.String()
	}
	return r, code
}

func TestDoctor(t *testing.T) {
	for _, tc := range []struct {
		name     string
		breakIt  func(t *testing.T, w *world)
		args     []string
		want     doctor.Verdict
		wantExit int
	}{
		{"frames pass", nil, []string{"--gateway", gw4.String(), "--gateway", gw6.String(), "--peer", peer4.String()}, doctor.Pass, 0},
		{"frames from new MACs dropped", dropUnknown, []string{"--gateway", gw4.String(), "--gateway", gw6.String()}, doctor.Dropped, 3},
		{"parent without carrier", hostPortDown, []string{"--gateway", gw4.String()}, doctor.NoCarrier, 4},
		{"no gateway answer", nil, []string{"--gateway", nobody.String()}, doctor.NoAnswer, 5},
		{"gateway with a smaller MTU", gatewayMTU1400, []string{"--gateway", gw4.String()}, doctor.MTUMismatch, 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			if tc.breakIt != nil {
				tc.breakIt(t, w)
			}
			r, code := w.run(t, tc.args...)
			if code != tc.wantExit || r.Verdict != tc.want || r.ExitCode != code {
				t.Fatalf("exit %d verdict %q (report's exit %d), want exit %d verdict %q; %+v", code, r.Verdict, r.ExitCode, tc.wantExit, tc.want, r)
			}
			if tc.want == doctor.Dropped && !strings.Contains(strings.Join(r.Advice, " "), "Forged transmits") {
				t.Errorf("dropped without the VMware advice: %q", r.Advice)
			}
		})
	}
}

func TestDoctorUsage(t *testing.T) {
	w := newWorld(t)
	if r, code := w.run(t); code != 2 || !strings.Contains(r.Reason, "--gateway or --peer") {
		t.Errorf("no target, no default route: exit %d, stderr %q; want 2 asking for --gateway or --peer", code, r.Reason)
	}
}

// TestDoctorVLAN: on a kernel without 802.1q, --vlan fails with exit 1 and
// a message naming it; with 802.1q, the VLAN is tested (the gateway
// answers only there).
func TestDoctorVLAN(t *testing.T) {
	w := newWorld(t)
	if err := nstest.HaveVLAN(t); err != nil {
		r, code := w.run(t, "--vlan", "7", "--gateway", "10.88.0.254")
		if code != 1 || !strings.Contains(r.Reason, "802.1q") {
			t.Fatalf("--vlan without 802.1q: exit %d, stderr %q; want 1 naming 802.1q", code, r.Reason)
		}
		return
	}
	if _, err := w.gateway.Exec("ip", "link", "add", "link", "lan0", "name", "lan0.7", "type", "vlan", "id", "7"); err != nil {
		t.Fatal(err)
	}
	if _, err := w.gateway.Exec("ip", "link", "set", "lan0.7", "up"); err != nil {
		t.Fatal(err)
	}
	nstest.AddAddrs(t, w.gateway, "lan0.7", netip.MustParsePrefix("10.88.0.254/24"))
	if r, code := w.run(t, "--vlan", "7", "--gateway", "10.88.0.254"); code != 0 || r.Link != w.lan.Master+".7" {
		t.Fatalf("--vlan 7: exit %d, %+v; want pass on %s.7", code, r, w.lan.Master)
	}
	if r, code := w.run(t, "--vlan", "8", "--gateway", "10.88.0.254"); code != 5 {
		t.Fatalf("--vlan 8, where the gateway is not: exit %d, %+v; want 5", code, r)
	}
}

// TestKilledMidRun: a doctor killed with SIGKILL while its macvlan is up
// leaves nothing: the parent's promiscuity, which the macvlan raised,
// drops back, the parent's namespace holds the links it held, and the
// next run works.
func TestKilledMidRun(t *testing.T) {
	w := newWorld(t)
	baseLinks := linkNames(t, w.lan.Host)
	base, err := w.lan.Host.Promiscuity(w.lan.Master)
	if err != nil {
		t.Fatal(err)
	}
	cmd := w.doctorCmd("--gateway", nobody.String()) // waits for an answer that never comes
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	if err := waitPromiscuity(w, func(p int) bool { return p > base }, done); err != nil {
		t.Fatalf("the doctor's macvlan never came up: %v", err)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err == nil {
		t.Fatal("the doctor ended before it was killed")
	}
	if err := waitPromiscuity(w, func(p int) bool { return p == base }, nil); err != nil {
		t.Fatalf("after SIGKILL: %v", err)
	}
	if got := linkNames(t, w.lan.Host); got != baseLinks {
		t.Errorf("links after SIGKILL: %s, before: %s", got, baseLinks)
	}
	if r, code := w.run(t, "--gateway", gw4.String()); code != 0 {
		t.Fatalf("the run after the kill: exit %d, %+v", code, r)
	}
	if err := waitPromiscuity(w, func(p int) bool { return p == base }, nil); err != nil {
		t.Fatalf("after the second run: %v", err)
	}
	if got := linkNames(t, w.lan.Host); got != baseLinks {
		t.Errorf("links after the second run: %s, before: %s", got, baseLinks)
	}
}

func linkNames(t *testing.T, n *nstest.NS) string {
	t.Helper()
	ls, err := n.Handle(t).LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range ls {
		names = append(names, l.Attrs().Name)
	}
	return strings.Join(names, ",")
}

// waitPromiscuity waits, at most 10 s, until the parent's promiscuity
// satisfies ok; it fails early when done (the doctor's end) fires.
func waitPromiscuity(w *world, ok func(int) bool, done <-chan error) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		p, err := w.lan.Host.Promiscuity(w.lan.Master)
		if err != nil || ok(p) {
			return err
		}
		select {
		case err := <-done:
			return errors.Join(errors.New("the doctor ended first"), err)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out; the promiscuity stays at %d", p)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func dropUnknown(t *testing.T, w *world) {
	w.lan.DropUnknownMACs(t, w.lan.Host.MAC(t, w.lan.Master), w.gateway.MAC(t, "lan0"), w.peer.MAC(t, "lan0"))
}

func hostPortDown(t *testing.T, w *world) {
	if _, err := w.lan.Switch.Exec("ip", "link", "set", w.lan.HostPort, "down"); err != nil {
		t.Fatal(err)
	}
}

func gatewayMTU1400(t *testing.T, w *world) {
	if _, err := w.gateway.Exec("ip", "link", "set", "lan0", "mtu", "1400"); err != nil {
		t.Fatal(err)
	}
}
