package macvlan_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/medianet/medianet/internal/nstest"
	"github.com/medianet/medianet/macvlan"
	"github.com/vishvananda/netlink"
)

// shimChildEnv carries a shimJob to a copy of this test binary run as a
// separate process (see TestMain).
const shimChildEnv = "MACVLAN_TEST_SHIM_CHILD"

// shimJob is what one racing process does: EnsureShim, then, when Route
// is set, AddShimRoute to it.
type shimJob struct {
	HostNS string
	Shim   macvlan.ShimSpec
	Route  netip.Addr
}

func TestMain(m *testing.M) {
	if job := os.Getenv(shimChildEnv); job != "" {
		os.Exit(shimChild(job))
	}
	os.Exit(m.Run())
}

// shimChild says it is ready (closing fd 3), waits for its stdin to close
// (the start signal, given once every child is ready, so they race), runs
// the job and prints "ok" or the error.
func shimChild(spec string) int {
	var j shimJob
	if err := json.Unmarshal([]byte(spec), &j); err != nil {
		fmt.Fprintf(os.Stderr, "bad job %q: %v\n", spec, err)
		return 2
	}
	os.NewFile(3, "ready").Close()
	_, _ = bytes.NewBuffer(nil).ReadFrom(os.Stdin)
	err := macvlan.EnsureShim(j.HostNS, j.Shim)
	if err == nil && j.Route.IsValid() {
		err = macvlan.AddShimRoute(j.HostNS, j.Shim.Name, j.Route)
	}
	if err != nil {
		fmt.Printf("error: %v\n", err)
		return 0
	}
	fmt.Println("ok")
	return 0
}

// shimHost is a LAN whose host namespace has IPv6 disabled, so that an
// EnsureShim asked for an IPv6 shim address fails in the kernel after the
// shim exists: the failing concurrent caller of these tests.
func shimHost(t *testing.T) *nstest.LAN {
	t.Helper()
	nstest.SkipUnlessRoot(t)
	lan := nstest.NewLAN(t, "mvt")
	for _, k := range []string{"net.ipv6.conf.default.disable_ipv6", "net.ipv6.conf.all.disable_ipv6"} {
		if err := lan.Host.Sysctl(k, "1"); err != nil {
			t.Fatal(err)
		}
	}
	return lan
}

// failingShim is shim with an address the host namespace refuses.
func failingShim(shim macvlan.ShimSpec) macvlan.ShimSpec {
	shim.Addresses = []netip.Prefix{pfx("fd00:84::2/128")}
	return shim
}

// shimRoutes returns the /32 destinations routed through the shim in n,
// or an error when the shim is gone.
func shimRoutes(n *nstest.NS, shim string) ([]netip.Addr, error) {
	h, err := n.NewHandle()
	if err != nil {
		return nil, err
	}
	defer h.Close()
	l, err := h.LinkByName(shim)
	if err != nil {
		return nil, fmt.Errorf("shim %q: %w", shim, err)
	}
	rs, err := h.RouteList(l, netlink.FAMILY_V4)
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return nil, err
	}
	var dsts []netip.Addr
	for _, r := range rs {
		if a, ok := netip.AddrFromSlice(r.Dst.IP); ok {
			dsts = append(dsts, a.Unmap())
		}
	}
	return dsts, nil
}

// TestShimCreatedMeanwhileIsAdopted: another process creates the shim and
// routes a container through it between this EnsureShim's lookup and its
// create. This call adopts the shim (EEXIST), and when it then fails it
// leaves the shim alone: the other process's container stays reachable.
func TestShimCreatedMeanwhileIsAdopted(t *testing.T) {
	for _, tc := range []struct {
		name string
		fail bool
	}{{"this call succeeds", false}, {"this call fails after adopting", true}} {
		t.Run(tc.name, func(t *testing.T) {
			lan := shimHost(t)
			nstest.AddAddrs(t, lan.Host, lan.Master, pfx("10.84.0.1/24"))
			ip := addr("10.84.0.10")
			cont := addContainer(t, lan, macvlan.ModeBridge, macvlan.Config{Addresses: []netip.Prefix{pfx("10.84.0.10/24")}})
			shim := macvlan.ShimSpec{Name: "mnshim0", Master: lan.Master}
			fired := false
			var otherErr error
			macvlan.SetShimCreateHook(t, func() {
				if fired {
					return // the other process's own EnsureShim
				}
				fired = true
				if otherErr = macvlan.EnsureShim(lan.Host.Path, shim); otherErr == nil {
					otherErr = macvlan.AddShimRoute(lan.Host.Path, shim.Name, ip)
				}
			})
			spec := shim
			if tc.fail {
				spec = failingShim(shim)
			}
			err := macvlan.EnsureShim(lan.Host.Path, spec)
			if !fired || otherErr != nil {
				t.Fatalf("the concurrent creator did not run (fired %v) or failed: %v", fired, otherErr)
			}
			if (err != nil) != tc.fail {
				t.Fatalf("EnsureShim after losing the create race: %v, want failure %v", err, tc.fail)
			}
			if dsts, err := shimRoutes(lan.Host, shim.Name); err != nil || !slices.Contains(dsts, ip) {
				t.Fatalf("after EnsureShim: routes through the shim = %v, %v; want the other process's %s", dsts, err, ip)
			}
			if err := lan.Host.Ping(ip, 2); err != nil {
				t.Errorf("host cannot reach the other process's container %s through the shim: %v", ip, err)
			}
			if err := reach(cont, addr("10.84.0.1")); err != nil {
				t.Errorf("container cannot reach the host through the shim: %v", err)
			}
		})
	}
}

// TestShimRaceProcesses: separate processes ensure one shim at once, some
// routing a container address through it, some failing (an IPv6 shim
// address the host refuses). Every succeeding process keeps its route:
// no failing process deletes the shim, whoever created it.
func TestShimRaceProcesses(t *testing.T) {
	lan := shimHost(t)
	shim := macvlan.ShimSpec{Name: "mnshim0", Master: lan.Master}
	const rounds, each = 6, 4
	for round := range rounds {
		var jobs []shimJob
		for i := range each {
			jobs = append(jobs,
				shimJob{HostNS: lan.Host.Path, Shim: shim, Route: netip.AddrFrom4([4]byte{10, 84, byte(round), byte(10 + i)})},
				shimJob{HostNS: lan.Host.Path, Shim: failingShim(shim)})
		}
		results := runShimChildren(t, jobs)
		dsts, routeErr := shimRoutes(lan.Host, shim.Name)
		for i, j := range jobs {
			switch {
			case !j.Route.IsValid() && !strings.HasPrefix(results[i], "error:"):
				t.Errorf("round %d: process %d with an IPv6 shim address: %q, want an error", round, i, results[i])
			case j.Route.IsValid() && results[i] != "ok":
				t.Errorf("round %d: process %d routing %s: %q, want ok", round, i, j.Route, results[i])
			case j.Route.IsValid() && !slices.Contains(dsts, j.Route):
				t.Errorf("round %d: route to %s is gone (routes %v, %v): a failing process removed the shim", round, j.Route, dsts, routeErr)
			}
		}
		if err := macvlan.DeleteShim(lan.Host.Path, shim.Name); err != nil {
			t.Fatal(err)
		}
	}
}

// runShimChildren starts one process per job, lets them all go at once
// when all are ready, and returns each one's result line.
func runShimChildren(t *testing.T, jobs []shimJob) []string {
	t.Helper()
	type child struct {
		cmd          *exec.Cmd
		out          bytes.Buffer
		start, ready *os.File
	}
	children := make([]*child, len(jobs))
	for i, j := range jobs {
		spec, err := json.Marshal(j)
		if err != nil {
			t.Fatal(err)
		}
		c := &child{cmd: exec.Command(os.Args[0], "-test.run=^$")}
		c.cmd.Env = append(os.Environ(), shimChildEnv+"="+string(spec))
		c.cmd.Stdout, c.cmd.Stderr = &c.out, &c.out
		startR, startW, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		readyR, readyW, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		c.cmd.Stdin, c.cmd.ExtraFiles, c.start, c.ready = startR, []*os.File{readyW}, startW, readyR
		if err := c.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		startR.Close()
		readyW.Close()
		children[i] = c
	}
	for _, c := range children {
		_, _ = c.ready.Read(make([]byte, 1)) // EOF: the child closed fd 3 (or died)
		c.ready.Close()
	}
	for _, c := range children {
		c.start.Close()
	}
	results := make([]string, len(jobs))
	for i, c := range children {
		if err := c.cmd.Wait(); err != nil {
			t.Fatalf("process %d: %v: %s", i, err, c.out.String())
		}
		results[i] = strings.TrimSpace(c.out.String())
	}
	return results
}
