// Package conflict_test runs the medianet CNI plugin as a runtime does,
// on a LAN built from namespaces (internal/nstest) where a "printer"
// statically holds addresses inside the node's range, and checks that an
// ADD never returns one of them: the address is quarantined with the
// printer's MAC, shown by `medianetctl ipam list` and `check`, counted by
// the node agent's metrics, and tried again after its retry time; that
// IPv6 duplicate address detection finds the same; that a network with
// conflictCheck "0" does not probe.
package conflict_test

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/medianet/medianet/internal/cnitest"
	"github.com/medianet/medianet/internal/nstest"
)

var binDir string

func TestMain(m *testing.M) {
	os.Exit(cnitest.Main(m, &binDir, "medianet", "medianetctl", "medianetd"))
}

var (
	printer4 = netip.MustParseAddr("10.91.0.2") // the first address the node hands out
	printer6 = netip.MustParseAddr("fd00:91::2")
)

// world is a LAN with the node's host namespace (holding the parent) and
// a printer, and the node's data directory.
type world struct {
	lan     *nstest.LAN
	printer *nstest.NS
	dataDir string
}

func newWorld(t *testing.T, printerAddrs ...netip.Prefix) *world {
	t.Helper()
	nstest.SkipUnlessRoot(t)
	lan := nstest.NewLAN(t, "mcf")
	w := &world{lan: lan, dataDir: t.TempDir()}
	w.printer = lan.AddPeer(t, printerAddrs...)
	for _, p := range printerAddrs {
		if p.Addr().Is6() {
			waitNotTentative(t, w.printer, p.Addr())
		}
	}
	return w
}

// conf is a medianet network on the LAN's parent; ipam holds more ipam
// keys (JSON members, without braces).
func (w *world) conf(name, subnet, ipam string) []byte {
	if ipam != "" {
		ipam = ", " + ipam
	}
	return fmt.Appendf(nil, `{"cniVersion":"1.1.0","name":%q,"type":"medianet","master":%q,
  "ipam":{"type":"medianet-ipam","subnet":%q,"node":"node-a","dataDir":%q%s}}`, name, w.lan.Master, subnet, w.dataDir, ipam)
}

// add runs the plugin's ADD for a fresh container namespace, in the
// node's host namespace.
func (w *world) add(t *testing.T, conf []byte, cid, cniArgs string) cnitest.Call {
	t.Helper()
	c := nstest.NewNS(t, "mcfc")
	return cnitest.Exec{Bin: filepath.Join(binDir, "medianet"), NS: w.lan.Host.Name, Verb: "ADD", ContainerID: cid, IfName: "eth0",
		Netns: c.Path, Args: cniArgs, Path: binDir, Conf: conf}.Run()
}

// addr returns the one address of family v4 in an ADD's result.
func resultAddr(t *testing.T, c cnitest.Call, v4 bool) netip.Addr {
	t.Helper()
	if c.Exit != 0 {
		t.Fatalf("ADD: %s", c)
	}
	var res struct {
		IPs []struct {
			Address string `json:"address"`
		} `json:"ips"`
	}
	if err := json.Unmarshal([]byte(c.Stdout), &res); err != nil {
		t.Fatalf("ADD result: %v: %s", err, c.Stdout)
	}
	for _, ip := range res.IPs {
		p := netip.MustParsePrefix(ip.Address)
		if p.Addr().Is4() == v4 {
			return p.Addr()
		}
	}
	t.Fatalf("ADD result without an address of the family: %s", c.Stdout)
	return netip.Addr{}
}

// entry is one element of `medianetctl ipam list --json`.
type entry struct {
	Network     string    `json:"network"`
	ContainerID string    `json:"containerID"`
	IfName      string    `json:"ifname"`
	IPs         []string  `json:"ips"`
	Created     time.Time `json:"created"`
	Conflict    string    `json:"conflict"`
	RetryAt     time.Time `json:"retryAt"`
}

func (w *world) ctl(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "medianetctl"), append([]string{"--data-dir", w.dataDir}, args...)...)
	out, err := cmd.Output()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatalf("medianetctl %v: %v", args, err)
	}
	return string(out), cmd.ProcessState.ExitCode()
}

// quarantines returns the quarantines of network, by address.
func (w *world) quarantines(t *testing.T, network string) map[string]entry {
	t.Helper()
	out, code := w.ctl(t, "ipam", "list", "--network", network, "--json")
	var es []entry
	if err := json.Unmarshal([]byte(out), &es); code != 0 || err != nil {
		t.Fatalf("ipam list --json: exit %d, %v: %s", code, err, out)
	}
	qs := map[string]entry{}
	for _, e := range es {
		if strings.HasPrefix(e.ContainerID, "conflict:") {
			qs[e.IfName] = e
		}
	}
	return qs
}

// TestADDSkipsThePrinter: the printer holds the first address of the
// node's range; the ADD returns the next one, the printer's address is
// quarantined with its MAC (list, list --json, check --json), counted in
// medianet_ipam_address_conflicts_total, refused when asked for by IP=
// before its retry time, probed again after it (and quarantined again
// while the printer is there), and handed out once the printer is gone.
func TestADDSkipsThePrinter(t *testing.T) {
	w := newWorld(t, netip.PrefixFrom(printer4, 24))
	mac := w.printer.MAC(t, "lan0").String()
	conf := w.conf("media", "10.91.0.0/24", `"conflictRetry":"2s"`)
	scrape := w.startAgent(t, conf)

	got := resultAddr(t, w.add(t, conf, "c1", ""), true)
	if got == printer4 {
		t.Fatalf("ADD returned %s, which the printer answers for", got)
	}
	q, ok := w.quarantines(t, "media")[printer4.String()]
	if !ok || q.Conflict != mac || q.ContainerID != "conflict:"+mac || q.RetryAt.Before(q.Created) {
		t.Fatalf("quarantines %+v: want %s answered by the printer's %s", w.quarantines(t, "media"), printer4, mac)
	}
	if out, _ := w.ctl(t, "ipam", "list"); !strings.Contains(out, "conflict:"+mac) || !strings.Contains(out, "(conflict)") {
		t.Errorf("ipam list does not show the conflict with %s:\n%s", mac, out)
	}
	out, code := w.ctl(t, "ipam", "check", "--json")
	if code != 3 || !strings.Contains(out, `"kind": "conflict"`) || !strings.Contains(out, `"mac": "`+mac+`"`) {
		t.Errorf("ipam check --json: exit %d, want 3 and a conflict finding with %s:\n%s", code, mac, out)
	}
	waitFor(t, "the conflict counted", func() bool {
		return strings.Contains(scrape(t), `medianet_ipam_address_conflicts_total{network="media",node="node-a"} 1`)
	})

	// Asked for by IP= while quarantined: refused, naming the MAC.
	c := w.add(t, conf, "c2", "IP="+printer4.String())
	if c.Exit == 0 || c.Err().Code != 7 || !strings.Contains(c.Err().Msg, mac) {
		t.Fatalf("ADD of the quarantined address: %s; want error 7 naming %s", c, mac)
	}
	// After the retry time it is probed again, and still answered for.
	sleepUntil(q.RetryAt)
	c = w.add(t, conf, "c3", "IP="+printer4.String())
	if c.Exit == 0 || !strings.Contains(c.Err().Msg, mac) {
		t.Fatalf("ADD of the printer's address after the retry time: %s; want an error naming %s", c, mac)
	}
	q2, ok := w.quarantines(t, "media")[printer4.String()]
	if !ok || !q2.RetryAt.After(q.RetryAt) {
		t.Fatalf("after the retry the address is not quarantined again: %+v (first %+v)", q2, q)
	}
	// The printer goes; after the retry time the address is handed out.
	if _, err := w.printer.Exec("ip", "addr", "del", netip.PrefixFrom(printer4, 24).String(), "dev", "lan0"); err != nil {
		t.Fatal(err)
	}
	sleepUntil(q2.RetryAt)
	if got := resultAddr(t, w.add(t, conf, "c4", "IP="+printer4.String()), true); got != printer4 {
		t.Fatalf("ADD after the printer left: %s, want %s", got, printer4)
	}
	if qs := w.quarantines(t, "media"); len(qs) != 0 {
		t.Errorf("quarantines left after the retry: %+v", qs)
	}
}

// TestEveryTryConflicts: when every address tried is answered for, the
// ADD fails with code 101 naming the addresses and the MAC, and nothing
// but the quarantines is left.
func TestEveryTryConflicts(t *testing.T) {
	var held []netip.Prefix
	for i := 2; i <= 5; i++ {
		held = append(held, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 91, 0, byte(i)}), 24))
	}
	w := newWorld(t, held...)
	mac := w.printer.MAC(t, "lan0").String()
	conf := w.conf("media", "10.91.0.0/24", ``)
	c := w.add(t, conf, "c1", "")
	if c.Exit == 0 || c.Err().Code != 101 || !strings.Contains(c.Err().Msg, mac) || !strings.Contains(c.Err().Msg, "10.91.0.5") {
		t.Fatalf("ADD with every try answered for: %s; want error 101 naming the addresses and %s", c, mac)
	}
	if qs := w.quarantines(t, "media"); len(qs) != 4 {
		t.Errorf("quarantines %+v, want the 4 addresses tried", qs)
	}
	out, _ := w.ctl(t, "ipam", "list", "--json")
	if strings.Contains(out, `"containerID": "c1"`) {
		t.Errorf("the failed ADD left an allocation:\n%s", out)
	}
	if got := resultAddr(t, w.add(t, conf, "c2", ""), true); got != netip.MustParseAddr("10.91.0.6") {
		t.Errorf("the next ADD got %s, want 10.91.0.6, the first nobody answers for", got)
	}
}

// TestDAD: IPv6 duplicate address detection finds the printer as ARP does.
func TestDAD(t *testing.T) {
	w := newWorld(t, netip.PrefixFrom(printer6, 64))
	mac := w.printer.MAC(t, "lan0").String()
	conf := w.conf("media6", "fd00:91::/120", ``)
	got := resultAddr(t, w.add(t, conf, "c1", ""), false)
	if got == printer6 {
		t.Fatalf("ADD returned %s, which the printer holds", got)
	}
	if q, ok := w.quarantines(t, "media6")[printer6.String()]; !ok || q.Conflict != mac {
		t.Fatalf("quarantines %+v: want %s answered by %s", w.quarantines(t, "media6"), printer6, mac)
	}
}

// TestCheckOff: with conflictCheck "0" nothing is probed: the ADD hands
// out the printer's address (the duplicate the check exists to prevent).
func TestCheckOff(t *testing.T) {
	w := newWorld(t, netip.PrefixFrom(printer4, 24))
	conf := w.conf("media", "10.91.0.0/24", `"conflictCheck":"0"`)
	if got := resultAddr(t, w.add(t, conf, "c1", ""), true); got != printer4 {
		t.Fatalf("ADD without the check: %s, want %s (no probe, so the printer's address)", got, printer4)
	}
	if qs := w.quarantines(t, "media"); len(qs) != 0 {
		t.Errorf("quarantines without the check: %+v", qs)
	}
}

// startAgent runs medianetd as the node agent of the data directory in
// the node's host namespace with metrics on its loopback, and returns a
// scrape of /metrics.
func (w *world) startAgent(t *testing.T, conf []byte) func(t *testing.T) string {
	t.Helper()
	confDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(confDir, "10-media.conf"), conf, 0o644); err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:9417"
	cmd := cnitest.InNS(w.lan.Host.Name, filepath.Join(binDir, "medianetd"), "--socket", "", "--cni-conf-dir", confDir,
		"--data-dir", w.dataDir, "--node", "node-a", "--doctor-interval", "0", "--metrics-listen", addr)
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("medianetd:\n%s", logs.String())
		}
	})
	scrape := func(t *testing.T) string {
		// curl inside the host namespace: the agent listens on its
		// loopback (Go's HTTP client dials from another thread).
		out, _ := w.lan.Host.Exec("curl", "-sf", "--max-time", "2", "http://"+addr+"/metrics")
		return string(out)
	}
	waitFor(t, "the agent's report socket", func() bool {
		_, err := os.Stat(filepath.Join(w.dataDir, "metrics.sock"))
		return err == nil && scrape(t) != ""
	})
	return scrape
}

// waitFor polls cond until it holds, for at most 20 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// sleepUntil waits for the wall clock to pass at: the retry time is the
// condition itself.
func sleepUntil(at time.Time) { time.Sleep(time.Until(at) + 10*time.Millisecond) }

func waitNotTentative(t *testing.T, n *nstest.NS, a netip.Addr) {
	t.Helper()
	waitFor(t, a.String()+" past its own DAD", func() bool {
		out, err := n.Exec("ip", "-6", "addr", "show", "tentative")
		return err == nil && !strings.Contains(string(out), a.String()+"/")
	})
}
