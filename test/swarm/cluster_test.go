package swarm

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/medianet/medianet/internal/dockertest"
	"github.com/medianet/medianet/internal/nstest"
	"github.com/medianet/medianet/ipam"
	"github.com/medianet/medianet/ipam/boltstore"
)

// swarmCluster starts three hosts with the managed plugin (SCOPE=global),
// all managers of one swarm, and gives the LAN's router the addresses
// routers. The plugins of the first two hosts read their engine through a
// medianet-engine-proxy (docker.source), the third's the engine's own
// socket.
func swarmCluster(t testing.TB, routers ...netip.Prefix) *dockertest.Hosts {
	t.Helper()
	hs := dockertest.NewHosts(t, 3)
	nstest.AddAddrs(t, hs.LAN.Host, hs.LAN.Master, routers...)
	errs := make([]error, len(hs.Hosts))
	var wg sync.WaitGroup
	for i, h := range hs.Hosts {
		var settings []string
		if i < 2 {
			settings = append(settings, "docker.source="+h.StartEngineProxy(t, filepath.Join(binDir, "medianet-engine-proxy")).Socket)
		}
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = h.InstallPlugin(medianetdBin(), "global", settings...) }()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := hs.Swarm(); err != nil {
		t.Fatal(err)
	}
	return hs
}

// failover hands the leadership from from (stopped cleanly, or killed)
// to to, failing t when it cannot.
func failover(t *testing.T, hs *dockertest.Hosts, from, to *dockertest.Host, kill bool) {
	t.Helper()
	if err := hs.Failover(from, to, kill); err != nil {
		t.Fatal(err)
	}
}

// swarmNetwork creates a swarm-scoped medianet network on h.
func swarmNetwork(t testing.TB, h *dockertest.Host, name string, subnet netip.Prefix, gw netip.Addr) {
	t.Helper()
	h.MustDocker(t, "network", "create", "--scope", "swarm", "-d", dockertest.PluginRef, "--ipam-driver", dockertest.PluginRef,
		"--subnet", subnet.String(), "--gateway", gw.String(), "-o", "parent="+dockertest.Parent, name)
}

// service creates a replicated service of sleeping busybox tasks on net
// (DNS round robin: no VIP taken from the subnet), at most three a node.
func service(t testing.TB, h *dockertest.Host, name, net string, replicas int) {
	t.Helper()
	h.MustDocker(t, "service", "create", "--detach", "--name", name, "--replicas", strconv.Itoa(replicas),
		"--replicas-max-per-node", "3", "--network", net, "--endpoint-mode", "dnsrr", "--no-resolve-image",
		"--stop-grace-period", "1s", dockertest.Image, "sleep", "3600")
}

// task is a running task of a service, on a host whose dockerd runs.
type task struct {
	host *dockertest.Host
	id   string
	pid  int
	addr netip.Prefix
}

// tasks lists the running tasks of svc on every host whose dockerd runs,
// with eth0's address read in the container.
func tasks(hs *dockertest.Hosts, svc string) ([]task, error) {
	var out []task
	for _, h := range hs.Hosts {
		if !h.Running() {
			continue
		}
		ids, err := h.Docker("ps", "-q", "--filter", "label=com.docker.swarm.service.name="+svc)
		if err != nil {
			return nil, err
		}
		for _, id := range strings.Fields(ids) {
			pid, err := h.Docker("inspect", "-f", "{{.State.Pid}}", id)
			if err != nil {
				return nil, err
			}
			n, _ := strconv.Atoi(pid)
			as, err := dockertest.AddrsOf(n, "eth0")
			if err != nil {
				return nil, err
			}
			tk := task{host: h, id: id, pid: n}
			if len(as) > 0 {
				tk.addr = as[0]
			}
			out = append(out, tk)
		}
	}
	return out, nil
}

// waitTasks waits until svc has n tasks running on the hosts whose
// dockerd runs, each with an address, none on the hosts avoid, and
// returns them.
func waitTasks(t *testing.T, hs *dockertest.Hosts, svc string, n int, avoid ...*dockertest.Host) []task {
	t.Helper()
	var got []task
	err := waitFor(3*time.Minute, func() error {
		var err error
		if got, err = tasks(hs, svc); err != nil {
			return err
		}
		addressed, avoided := 0, 0
		for _, tk := range got {
			if tk.addr.IsValid() {
				addressed++
			}
			if slices.Contains(avoid, tk.host) {
				avoided++
			}
		}
		if len(got) != n || addressed != n || avoided > 0 {
			return fmt.Errorf("%d tasks of %s running (%d with an address, %d on hosts to avoid), want %d: %w", len(got), svc, addressed, avoided, n, errNotYet)
		}
		return nil
	})
	if err != nil {
		for _, h := range hs.Hosts {
			if h.IsLeader() {
				ps, _ := h.Docker("service", "ps", "--no-trunc", svc)
				t.Logf("service ps %s on %s:\n%s", svc, h.Name, ps)
			}
		}
		t.Fatalf("service %s: %v", svc, err)
	}
	return got
}

// lanAddrs returns every address in subnet held by a container running on
// any host (also hosts whose dockerd was killed), read in the containers:
// what the LAN sees. Two containers with one address fail t.
func lanAddrs(t *testing.T, hs *dockertest.Hosts, subnet netip.Prefix) map[netip.Addr]string {
	t.Helper()
	held := map[netip.Addr]string{}
	for _, h := range hs.Hosts {
		as, err := h.ContainerAddrs("eth0")
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range as {
			if !subnet.Contains(a.Addr()) {
				continue
			}
			if other, dup := held[a.Addr()]; dup {
				t.Errorf("address %s held by a container on %s and one on %s", a.Addr(), other, h.Name)
			}
			held[a.Addr()] = h.Name
		}
	}
	return held
}

// checkTasks checks the invariants on ts: every address distinct
// (among every container on the LAN), in subnet, not the gateway, on a
// macvlan of its own host's parent.
func checkTasks(t *testing.T, hs *dockertest.Hosts, ts []task, subnet netip.Prefix, gw netip.Addr) {
	t.Helper()
	lanAddrs(t, hs, subnet)
	for _, tk := range ts {
		if a := tk.addr.Addr(); !subnet.Contains(a) || a == gw || tk.addr.Bits() != subnet.Bits() {
			t.Errorf("task %.12s on %s has %s: want an address of %s other than the gateway %s", tk.id, tk.host.Name, tk.addr, subnet, gw)
		}
		if err := tk.host.CheckMacvlan(tk.pid); err != nil {
			t.Errorf("task %.12s on %s: %v", tk.id, tk.host.Name, err)
		}
	}
}

// ping checks that task from reaches dst.
func ping(t *testing.T, from task, dst netip.Addr) {
	t.Helper()
	var err error
	for range 3 {
		if _, err = from.host.Docker("exec", from.id, "ping", "-c", "1", "-W", "2", dst.String()); err == nil {
			return
		}
	}
	t.Errorf("task %.12s on %s cannot reach %s: %v", from.id, from.host.Name, dst, err)
}

// allocated returns the addresses of subnet h's managed plugin holds in
// pools of space ("medianet-global" or "medianet-local").
func allocated(t testing.TB, h *dockertest.Host, space string, subnet netip.Prefix) []netip.Addr {
	t.Helper()
	return storeAddrs(t, h.PluginDataDir(), subnet, func(a ipam.Allocation) bool {
		return strings.HasPrefix(a.Network, space+"/"+subnet.String()+"/")
	})
}

// storeAddrs returns, sorted, the addresses of subnet in the allocations
// of the IPAM store in dir that keep accepts. medianetd opens the store
// only for each transaction, so it may be running.
func storeAddrs(t testing.TB, dir string, subnet netip.Prefix, keep func(ipam.Allocation) bool) []netip.Addr {
	t.Helper()
	ctx := context.Background()
	st, err := boltstore.Open(ctx, dir, boltstore.Options{Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	all, err := ipam.List(ctx, st, "")
	if err != nil {
		t.Fatal(err)
	}
	var out []netip.Addr
	for _, a := range all {
		for _, ip := range a.IPs {
			if keep(a) && subnet.Contains(ip) {
				out = append(out, ip)
			}
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// lanNet holds every subnet the Swarm tests use.
var lanNet = netip.MustParsePrefix("10.238.0.0/16")

// agrees waits until medianet follows the cluster, on every host whose
// dockerd runs: the leader's Swarm pools hold exactly the addresses swarm
// has allocated to the tasks of svcs on subnet (a task's address is
// allocated until the task is both meant to stop and stopped; tasks of a
// node that went down keep theirs), which include every address a
// container on the LAN holds; the other managers hold no Swarm pool; every
// host's own pools hold exactly its containers' addresses; and no host
// has a macvlan link left in its namespace (a task's link is in its
// container's).
func agrees(t *testing.T, hs *dockertest.Hosts, leader *dockertest.Host, subnet netip.Prefix, svcs ...string) {
	t.Helper()
	start := time.Now()
	err := waitFor(90*time.Second, func() error {
		want, err := swarmAllocated(leader, subnet, svcs)
		if err != nil {
			return err
		}
		got := allocated(t, leader, "medianet-global", subnet)
		if !slices.Equal(got, want) {
			return fmt.Errorf("leader %s holds %v in its global pool, swarm's tasks %v: %w", leader.Name, got, want, errNotYet)
		}
		if all := inPools(t, leader, "medianet-global", lanNet); len(all) != len(got) {
			return fmt.Errorf("leader %s holds %v in its global pools, of which only %v are swarm's tasks' on %s: %w", leader.Name, all, got, subnet, errNotYet)
		}
		for a, host := range lanAddrs(t, hs, lanNet) {
			if subnet.Contains(a) && !slices.Contains(got, a) {
				return fmt.Errorf("%s, held by a container on %s, is free in leader %s's pool", a, host, leader.Name)
			}
		}
		for _, h := range hs.Hosts {
			if h.Running() {
				if err := hostAgrees(t, h, h == leader); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
	t.Logf("medianet agreed with the cluster (leader %s) after %s", leader.Name, time.Since(start).Round(100*time.Millisecond))
}

// hostAgrees checks one running host: no macvlan link in its namespace,
// its own pools exactly its containers' addresses, and, unless it leads,
// no Swarm pool.
func hostAgrees(t *testing.T, h *dockertest.Host, leads bool) error {
	if links, err := h.Macvlans(); err != nil || len(links) > 0 {
		return fmt.Errorf("macvlans left on %s of %s: %v (%v): %w", dockertest.Parent, h.Name, links, err, errNotYet)
	}
	as, err := h.ContainerAddrs("eth0")
	if err != nil {
		return err
	}
	var mine []netip.Addr
	for _, a := range as {
		if lanNet.Contains(a.Addr()) {
			mine = append(mine, a.Addr())
		}
	}
	slices.SortFunc(mine, netip.Addr.Compare)
	if got := inPools(t, h, "medianet-local", lanNet); !slices.Equal(got, mine) {
		return fmt.Errorf("%s holds %v in its own pools, its containers %v: %w", h.Name, got, mine, errNotYet)
	}
	if got := inPools(t, h, "medianet-global", lanNet); !leads && len(got) > 0 {
		return fmt.Errorf("%s, not the leader, holds %v in Swarm pools: %w", h.Name, got, errNotYet)
	}
	return nil
}

// inPools returns the addresses in prefix that h's managed plugin holds
// in pools of space, whatever their subnet.
func inPools(t testing.TB, h *dockertest.Host, space string, prefix netip.Prefix) []netip.Addr {
	t.Helper()
	return storeAddrs(t, h.PluginDataDir(), prefix, func(a ipam.Allocation) bool {
		return strings.HasPrefix(a.Network, space+"/")
	})
}

// swarmAllocated lists the addresses in subnet that swarm (asked on
// leader) has allocated to the tasks of svcs.
func swarmAllocated(leader *dockertest.Host, subnet netip.Prefix, svcs []string) ([]netip.Addr, error) {
	var ids []string
	for _, svc := range svcs {
		out, err := leader.Docker("service", "ps", "--quiet", "--no-trunc", svc)
		if err != nil {
			return nil, err
		}
		ids = append(ids, strings.Fields(out)...)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	out, err := leader.Docker(append([]string{"inspect", "--type", "task", "--format",
		"{{.DesiredState}} {{.Status.State}}{{range .NetworksAttachments}}{{range .Addresses}} {{.}}{{end}}{{end}}"}, ids...)...)
	if err != nil {
		return nil, err
	}
	stopped := map[string]bool{"complete": true, "shutdown": true, "failed": true, "rejected": true, "remove": true, "orphaned": true}
	var addrs []netip.Addr
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || (f[0] != "running" && f[0] != "ready" && f[0] != "accepted" && stopped[f[1]]) {
			continue // deallocated: meant to stop, and stopped
		}
		for _, a := range f[2:] {
			if p, err := netip.ParsePrefix(a); err == nil && subnet.Contains(p.Addr()) {
				addrs = append(addrs, p.Addr())
			}
		}
	}
	slices.SortFunc(addrs, netip.Addr.Compare)
	return addrs, nil
}
