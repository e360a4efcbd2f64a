package cni_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/medianet/medianet/cni"
	"github.com/medianet/medianet/internal/nstest"
	"github.com/medianet/medianet/macvlan"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// floorAddr and floorGW are what the floor configures (the reference
// plugin with static IPAM is given the same).
var (
	floorAddr = netip.MustParsePrefix("10.80.255.1/16")
	floorGW   = netip.MustParseAddr("10.80.255.254")
)

// floorAdd and floorDel do in this process, with no exec and no store,
// the kernel work of one medianet ADD and DEL, the way the fewest system
// calls can: find the master; create the macvlan inside the container's
// namespace under a temporary name; find and rename it; set arp_notify
// there; add the address; set it up; add the default route; then, for
// DEL, find the link and delete it. Every namespace file and netlink
// socket (NETLINK_ROUTE only) is opened and closed as a plugin process
// must.
func floorDel(netnsPath string) error {
	return inNetns(netnsPath, func(_ netns.NsHandle, h *netlink.Handle) error {
		l, err := h.LinkByName("eth0")
		if err != nil {
			return err
		}
		return h.LinkDel(l)
	})
}

func floorAdd(master, netnsPath string) error {
	host, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return err
	}
	defer host.Close()
	m, err := host.LinkByName(master)
	if err != nil {
		return err
	}
	return inNetns(netnsPath, func(fd netns.NsHandle, h *netlink.Handle) error {
		attrs := netlink.NewLinkAttrs()
		attrs.Name, attrs.ParentIndex, attrs.MTU, attrs.Namespace = macvlan.TempPrefix+"floor", m.Attrs().Index, m.Attrs().MTU, netlink.NsFd(fd)
		if err := host.LinkAdd(&netlink.Macvlan{LinkAttrs: attrs, Mode: netlink.MACVLAN_MODE_BRIDGE}); err != nil {
			return err
		}
		l, err := h.LinkByName(macvlan.TempPrefix + "floor")
		if err != nil {
			return err
		}
		if err := h.LinkSetName(l, "eth0"); err != nil {
			return err
		}
		err = ns.WithNetNSPath(netnsPath, func(ns.NetNS) error {
			return os.WriteFile("/proc/sys/net/ipv4/conf/eth0/arp_notify", []byte("1"), 0o644)
		})
		if err != nil {
			return err
		}
		ipn := &net.IPNet{IP: floorAddr.Addr().AsSlice(), Mask: net.CIDRMask(floorAddr.Bits(), 32)}
		if err := h.AddrAdd(l, &netlink.Addr{IPNet: ipn}); err != nil {
			return err
		}
		if err := h.LinkSetUp(l); err != nil {
			return err
		}
		return h.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Gw: floorGW.AsSlice()})
	})
}

// inNetns opens the namespace at path and a netlink socket in it for fn.
func inNetns(path string, fn func(fd netns.NsHandle, h *netlink.Handle) error) error {
	fd, err := netns.GetFromPath(path)
	if err != nil {
		return err
	}
	defer fd.Close()
	h, err := netlink.NewHandleAt(fd, unix.NETLINK_ROUTE)
	if err != nil {
		return err
	}
	defer h.Close()
	return fn(fd, h)
}

// inProcess runs medianet's own ADD or DEL code (cni.Main, medianet-ipam
// in-process with its bbolt store) in this process: the exec'd plugin
// minus process start, runtime and package init, and stdin/stdout.
func inProcess(verb string, conf []byte, cid, netnsPath string) error {
	c, err := cni.ParseMainConfig(conf)
	if err != nil {
		return err
	}
	args := &skel.CmdArgs{ContainerID: cid, Netns: netnsPath, IfName: "eth0", StdinData: conf}
	var m cni.Main
	if verb == "ADD" {
		_, err = m.Add(context.Background(), args, c)
		return err
	}
	return m.Del(context.Background(), args, c)
}

// ipamInProcess runs medianet-ipam's ADD or DEL (cni.Plugin: open the
// store, allocate or release, close) in this process: the store's share
// of an ADD or DEL.
func ipamInProcess(verb string, conf []byte, cid string) error {
	args := &skel.CmdArgs{ContainerID: cid, IfName: "eth0", StdinData: conf}
	var p cni.Plugin
	c, ips, err := p.Load(args)
	if err != nil {
		return err
	}
	if verb == "ADD" {
		_, err = p.Add(context.Background(), args, c, ips)
		return err
	}
	return p.Del(context.Background(), args, c)
}

// emptyUpdate is one bbolt write transaction that changes nothing, on
// the store file in dir: what opening the store costs when it checks
// its schema in a write transaction.
func emptyUpdate(dir string) error {
	db, err := bolt.Open(filepath.Join(dir, "ipam.db"), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return err
	}
	defer db.Close()
	return db.Update(func(*bolt.Tx) error { return nil })
}

// BenchmarkAddDelFloor compares, interleaved in one run, ADD and DEL of
// a container on a macvlan, each verb timed on its own:
//   - floor: the same kernel work in this process (floorAdd, floorDel);
//   - medianet: bin/medianet exec'd, IPAM in-process with its store;
//   - reference: the reference macvlan with the trivial static IPAM, exec'd
//     (two processes per verb, no store);
//   - in-process: medianet's ADD and DEL code without exec (inProcess);
//
// and, to split the cost: the IPAM part alone in-process (store-add,
// store-del: open the bbolt store, allocate or release, close), one empty
// bbolt write transaction (empty-update: what a store open spends when
// it checks its schema in a write transaction), one exec of bin/medianet
// for VERSION (exec-version: process start, Go runtime, package init,
// JSON out) and one of /bin/true (exec-true). Metrics: the p50 of each in µs; medianet/floor and
// reference/floor for ADD+DEL (the target is medianet/floor <= 1.3) and
// for ADD alone (what a pod start waits for).
//
//	go test -run '^$' -bench AddDelFloor -benchtime 300x ./test/cni
func BenchmarkAddDelFloor(b *testing.B) {
	p := newBenchPair(b, 0)
	skipWithoutRef(b, "static")
	master := masterOf(p.ours)
	ctr := nstest.NewNS(b, "mncf")
	static := []byte(fmt.Sprintf(`{"cniVersion":"1.0.0","name":"bench","type":"macvlan","master":%q,
		"ipam":{"type":"static","addresses":[{"address":%q,"gateway":%q}],"routes":[{"dst":"0.0.0.0/0"}]}}`,
		master, floorAddr, floorGW))
	contenders := []struct {
		name     string
		add, del func(cid string) error
	}{
		{"floor", func(string) error { return floorAdd(master, ctr.Path) }, func(string) error { return floorDel(ctr.Path) }},
		{"medianet", execVerb(b, p.ours, "ADD", ctr.Path), execVerb(b, p.ours, "DEL", ctr.Path)},
		{"reference", execVerb(b, inv{host: nstest.Root(), plugin: filepath.Join(refPlugins, "macvlan"), conf: static}, "ADD", ctr.Path),
			execVerb(b, inv{host: nstest.Root(), plugin: filepath.Join(refPlugins, "macvlan"), conf: static}, "DEL", ctr.Path)},
		{"in-process", func(cid string) error { return inProcess("ADD", p.ours.conf, cid, ctr.Path) },
			func(cid string) error { return inProcess("DEL", p.ours.conf, cid, ctr.Path) }},
	}
	ipamDir := b.TempDir()
	ipamConf := []byte(fmt.Sprintf(`{"cniVersion":"1.0.0","name":"bench","type":"medianet-ipam",
		"ipam":{"type":"medianet-ipam","subnet":"10.81.0.0/16","node":"bench-node","dataDir":%q}}`, ipamDir))
	t := map[string][]time.Duration{}
	timeIt := func(name string, fn func() error) {
		start := time.Now()
		if err := fn(); err != nil {
			b.Fatalf("%s: %v", name, err)
		}
		t[name] = append(t[name], time.Since(start))
	}
	for i := 0; b.Loop(); i++ {
		for _, c := range contenders {
			cid := fmt.Sprintf("floor-%s-%d", c.name, i)
			timeIt(c.name+"-add", func() error { return c.add(cid) })
			timeIt(c.name+"-del", func() error { return c.del(cid) })
		}
		cid := fmt.Sprintf("floor-ipam-%d", i)
		timeIt("store-add", func() error { return ipamInProcess("ADD", ipamConf, cid) })
		timeIt("store-del", func() error { return ipamInProcess("DEL", ipamConf, cid) })
		timeIt("empty-update", func() error { return emptyUpdate(ipamDir) })
		timeIt("exec-version", func() error { return execEnv(bin("medianet"), "CNI_COMMAND=VERSION").Run() })
		timeIt("exec-true", func() error { return exec.Command("/bin/true").Run() })
	}
	p50 := func(name string) float64 { return float64(pctl(t[name], 50)) }
	for _, c := range contenders {
		b.ReportMetric((p50(c.name+"-add")+p50(c.name+"-del"))/1e3, c.name+"-adddel-p50-µs")
		b.ReportMetric(p50(c.name+"-add")/1e3, c.name+"-add-p50-µs")
	}
	for _, n := range []string{"store-add", "store-del", "empty-update", "exec-version", "exec-true"} {
		b.ReportMetric(p50(n)/1e3, n+"-p50-µs")
	}
	both := func(n string) float64 { return p50(n+"-add") + p50(n+"-del") }
	for _, n := range []string{"medianet", "reference", "in-process"} {
		b.ReportMetric(both(n)/both("floor"), n+"/floor")
		b.ReportMetric(p50(n+"-add")/p50("floor-add"), n+"/floor-ADD")
	}
}

// execVerb returns a function that execs i's plugin for verb on netns,
// failing b unless it exits 0.
func execVerb(b *testing.B, i inv, verb, netns string) func(cid string) error {
	return func(cid string) error {
		c := i
		c.verb, c.cid, c.netns = verb, cid, netns
		if out := c.run(b); out.Exit != 0 {
			return fmt.Errorf("%s %s: %v", verb, cid, out)
		}
		return nil
	}
}

func execEnv(path string, env ...string) *exec.Cmd {
	cmd := exec.Command(path)
	cmd.Env = env
	return cmd
}

func masterOf(i inv) string {
	c, err := cni.ParseMainConfig(i.conf)
	if err != nil {
		panic(err)
	}
	return c.Spec.Master
}

// pctl returns the p-th percentile of ds.
func pctl(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*p/100)]
}
