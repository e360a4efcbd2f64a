package swarm

import (
	"context"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/medianet/medianet/internal/dockertest"
	"github.com/medianet/medianet/internal/etcdtest"
	"github.com/medianet/medianet/internal/nstest"
	"github.com/medianet/medianet/ipam"
	"github.com/medianet/medianet/ipam/etcdstore"
)

// TestStandaloneHosts: three dockerd without Swarm, each with the legacy
// medianetd and a local medianet network of one subnet, created on each.
// Containers on different hosts never share an address and reach each
// other: with --ipam-opt node-ranges shared by all hosts (and a
// live-restore restart of one host, whose containers keep running and
// keep their addresses), and with blocks claimed in one etcd.
func TestStandaloneHosts(t *testing.T) {
	hs := dockertest.NewHosts(t, 3)
	t.Run("node ranges", func(t *testing.T) { standaloneRanges(t, hs) })
	t.Run("etcd", func(t *testing.T) { standaloneEtcd(t, hs) })
}

// standaloneRanges: node ranges shared by all hosts; one host's dockerd
// restarts with live-restore.
func standaloneRanges(t *testing.T, hs *dockertest.Hosts) {
	subnet := netip.MustParsePrefix("10.237.1.0/24")
	ranges := map[string]netip.Prefix{}
	var opt []string
	for i, h := range hs.Hosts {
		ranges[h.Name] = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 237, 1, byte(16 * i)}), 28)
		opt = append(opt, h.Name+"="+ranges[h.Name].String())
	}
	h2 := hs.Hosts[1]
	h2.Stop()
	h2.Start(t, "--live-restore")
	mds := standaloneNetwork(t, hs, "mediaR", subnet, "--ipam-opt", "node-ranges="+strings.Join(opt, ","))
	cs := standaloneContainers(t, hs, "mediaR", 3)
	for _, c := range cs {
		if !ranges[c.host.Name].Contains(c.addr.Addr()) {
			t.Errorf("container on %s has %s, outside its node range %s", c.host.Name, c.addr, ranges[c.host.Name])
		}
	}
	checkStandalone(t, hs, cs, subnet)

	before := containerAddrs(t, h2)
	h2.Stop() // live-restore: the containers run on
	h2.Start(t, "--live-restore")
	if got := containerAddrs(t, h2); !slices.Equal(got, before) {
		t.Errorf("%s's containers after a live-restore restart of dockerd: %v, want %v", h2.Name, got, before)
	}
	if got := mdAllocated(t, mds[1], subnet); !slices.Equal(got, before) {
		t.Errorf("%s's medianet after the restart holds %v, its containers %v", h2.Name, got, before)
	}
	lanAddrs(t, hs, subnet)
}

// standaloneEtcd: blocks claimed in one etcd, reached through a relay on
// the LAN.
func standaloneEtcd(t *testing.T, hs *dockertest.Hosts) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	// etcd listens on the test process's loopback: a relay in the
	// LAN's first namespace makes it reachable from the hosts.
	relay := netip.MustParseAddrPort("10.239.0.250:2379")
	nstest.AddAddrs(t, hs.LAN.Host, hs.LAN.Master, netip.PrefixFrom(relay.Addr(), 24))
	dockertest.Forward(t, hs.LAN.Host, relay.String(), strings.TrimPrefix(srv.Endpoints()[0], "http://"))
	subnet := netip.MustParsePrefix("10.237.2.0/24")
	standaloneNetwork(t, hs, "mediaE", subnet, "--ipam-opt", "block-size=28",
		"--etcd-endpoints", "http://"+relay.String(), "--etcd-prefix", "/medianet-standalone")
	cs := standaloneContainers(t, hs, "mediaE", 3)
	checkStandalone(t, hs, cs, subnet)
	cli, err := etcdstore.New(etcdstore.Config{Endpoints: srv.Endpoints(), Prefix: "/medianet-standalone"})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	claims, err := cli.Claims(context.Background(), "docker-10.237.2.0-24", "")
	if err != nil {
		t.Fatal(err)
	}
	owner := map[netip.Prefix]string{}
	for _, c := range claims {
		owner[c.Block] = c.Claim.Node
	}
	for _, c := range cs {
		b := netip.PrefixFrom(c.addr.Addr(), 28).Masked()
		if owner[b] != c.host.Name {
			t.Errorf("container on %s has %s, in block %s claimed by %q", c.host.Name, c.addr, b, owner[b])
		}
	}
}

// standaloneNetwork starts the legacy medianetd on every host with the
// medianetd flags among args (those starting --etcd), and creates network
// name on each with the others; both go when t ends.
func standaloneNetwork(t *testing.T, hs *dockertest.Hosts, name string, subnet netip.Prefix, args ...string) []*dockertest.Medianetd {
	t.Helper()
	var flags, netArgs []string
	for i := 0; i < len(args); i += 2 {
		if strings.HasPrefix(args[i], "--etcd") {
			flags = append(flags, args[i], args[i+1])
		} else {
			netArgs = append(netArgs, args[i], args[i+1])
		}
	}
	gw := subnet.Addr().As4()
	gw[3] = 254
	var mds []*dockertest.Medianetd
	for _, h := range hs.Hosts {
		mds = append(mds, h.StartMedianetd(t, medianetdBin(), flags...))
		h.MustDocker(t, append(append([]string{"network", "create", "-d", "medianet", "--ipam-driver", "medianet",
			"--subnet", subnet.String(), "--gateway", netip.AddrFrom4(gw).String(), "-o", "parent=" + dockertest.Parent}, netArgs...), name)...)
		t.Cleanup(func() {
			if _, err := h.Docker("network", "rm", name); err != nil {
				t.Error(err)
			}
			if links, err := h.Macvlans(); err != nil || len(links) > 0 {
				t.Errorf("macvlans left on %s after network rm: %v (%v)", h.Name, links, err)
			}
		})
	}
	t.Cleanup(func() {
		for i, md := range mds {
			if got := mdAllocated(t, md, subnet); len(got) != 0 {
				t.Errorf("%s's medianet holds %v after the containers and network went", hs.Hosts[i].Name, got)
			}
		}
	})
	return mds
}

// standaloneContainers runs n containers on net on every host, removed
// when t ends, and returns them with their addresses.
func standaloneContainers(t *testing.T, hs *dockertest.Hosts, net string, n int) []task {
	t.Helper()
	var out []task
	for _, h := range hs.Hosts {
		for range n {
			id := h.MustDocker(t, "run", "-d", "--network", net, dockertest.Image, "sleep", "3600")
			t.Cleanup(func() { _, _ = h.Docker("rm", "-f", id) })
			pid := h.MustDocker(t, "inspect", "-f", "{{.State.Pid}}", id)
			tk := task{host: h, id: id}
			var err error
			if tk.pid, err = strconv.Atoi(pid); err != nil {
				t.Fatal(err)
			}
			as, err := dockertest.AddrsOf(tk.pid, "eth0")
			if err != nil || len(as) == 0 {
				t.Fatalf("container %.12s on %s: eth0 addresses %v, %v", id, h.Name, as, err)
			}
			tk.addr = as[0]
			out = append(out, tk)
		}
	}
	return out
}

// checkStandalone checks distinct addresses of subnet on macvlans of
// each host's parent, and that the first host's first container reaches
// a container of every other host.
func checkStandalone(t *testing.T, hs *dockertest.Hosts, cs []task, subnet netip.Prefix) {
	t.Helper()
	gw := subnet.Addr().As4()
	gw[3] = 254
	checkTasks(t, hs, cs, subnet, netip.AddrFrom4(gw))
	reached := map[string]bool{cs[0].host.Name: true}
	for _, c := range cs {
		if !reached[c.host.Name] {
			ping(t, cs[0], c.addr.Addr())
			reached[c.host.Name] = true
		}
	}
}

// containerAddrs lists the addresses of h's containers, sorted.
func containerAddrs(t *testing.T, h *dockertest.Host) []netip.Addr {
	t.Helper()
	as, err := h.ContainerAddrs("eth0")
	if err != nil {
		t.Fatal(err)
	}
	var out []netip.Addr
	for _, a := range as {
		out = append(out, a.Addr())
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// mdAllocated lists the addresses of subnet the legacy medianetd md
// holds, sorted.
func mdAllocated(t *testing.T, md *dockertest.Medianetd, subnet netip.Prefix) []netip.Addr {
	t.Helper()
	return storeAddrs(t, md.DataDir, subnet, func(ipam.Allocation) bool { return true })
}
