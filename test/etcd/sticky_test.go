package etcd

import (
	"bytes"
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/medianet/medianet/internal/etcdtest"
	"github.com/medianet/medianet/ipam/etcdstore"
)

// pod is a StatefulSet pod as kubelet names it to CNI.
func pod(name string) string {
	return "IgnoreUnknown=1;K8S_POD_NAMESPACE=media;K8S_POD_NAME=" + name + ";K8S_POD_INFRA_CONTAINER_ID=x"
}

func (c netConf) podAdd(t *testing.T, sandbox, name string) (netip.Addr, call) {
	t.Helper()
	r := c.execArgs(t, "ADD", sandbox, pod(name), c.json())
	if r.out.Code != 0 || len(r.out.IPs) != 1 {
		return netip.Addr{}, r
	}
	return netip.MustParsePrefix(r.out.IPs[0].Address).Addr(), r
}

func (c netConf) podDel(t *testing.T, sandbox, name string) {
	t.Helper()
	if r := c.execArgs(t, "DEL", sandbox, pod(name), c.json()); r.out.Code != 0 {
		t.Fatalf("DEL %s on %s: %d %q", sandbox, c.node, r.out.Code, r.out.Msg)
	}
}

// TestStickyStatefulSetThroughCNI replays a JVB StatefulSet pod's life
// through the real plugin, as kubelet drives it (K8S_POD_NAMESPACE and
// K8S_POD_NAME in CNI_ARGS), on a network with ipam.sticky: created on
// node a, deleted and recreated there (same address), deleted and created
// on node b once a's node agent published the hold (same address, moved),
// a third pod refused the held address, `medianetctl ipam list` showing
// the hold and its expiry, and the address free again once the sticky
// period ran out.
func TestStickyStatefulSetThroughCNI(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	ek := map[string]any{"endpoints": srv.Endpoints(), "prefix": "/medianet-sticky"}
	sticky := map[string]any{"sticky": "4s"}
	a := netConf{node: "a", dir: t.TempDir(), name: "media", subnet: "10.97.0.0/24", blockSize: 28, etcd: ek, extra: sticky}
	b := netConf{node: "b", dir: t.TempDir(), name: "media", subnet: "10.97.0.0/24", blockSize: 28, etcd: ek, extra: sticky}
	aConf, bConf := writeConf(t, a), writeConf(t, b)
	x, r := a.podAdd(t, "sandbox-1", "jvb-3")
	if !x.IsValid() {
		t.Fatalf("ADD jvb-3 on a: %d %q", r.out.Code, r.out.Msg)
	}
	a.podDel(t, "sandbox-1", "jvb-3")
	if got, r := a.podAdd(t, "sandbox-2", "jvb-3"); got != x {
		t.Fatalf("jvb-3 recreated on a: %s (%d %q), want %s", got, r.out.Code, r.out.Msg, x)
	}
	a.podDel(t, "sandbox-2", "jvb-3")
	var entries []struct {
		ContainerID string    `json:"containerID"`
		Workload    string    `json:"workload"`
		HeldUntil   time.Time `json:"heldUntil"`
	}
	out := ctl(t, "--data-dir", a.dir, "ipam", "list", "--json")
	if err := json.Unmarshal([]byte(out), &entries); err != nil || len(entries) != 1 ||
		entries[0].Workload != "media/jvb-3" || entries[0].HeldUntil.IsZero() {
		t.Fatalf("list after DEL: %v %q; want jvb-3's hold with its expiry", err, out)
	}
	// A third pod asks for the held address: refused, naming the holder.
	third := a.execArgs(t, "ADD", "intruder", pod("coturn-0"), withIPs(a.json(), x))
	if third.out.Code != 7 || !strings.Contains(third.out.Msg, "media/jvb-3") {
		t.Errorf("a third pod asking for %s on a: %d %q, want 7 naming media/jvb-3", x, third.out.Code, third.out.Msg)
	}
	ctl(t, "--data-dir", a.dir, "ipam", "sync", aConf) // a's node agent publishes the hold
	if got, r := b.podAdd(t, "sandbox-3", "jvb-3"); got != x {
		t.Fatalf("jvb-3 rescheduled on b: %s (%d %q), want %s", got, r.out.Code, r.out.Msg, x)
	}
	ctl(t, "--data-dir", a.dir, "ipam", "sync", aConf)
	if got, _ := a.podAdd(t, "other", "janus-0"); got == x {
		t.Fatalf("node a handed %s to janus-0 while jvb-3 uses it on b", x)
	}
	b.podDel(t, "sandbox-3", "jvb-3")
	// The sticky period runs out: the node agents' syncs expire the hold
	// on b and free the address on a. Wait for that condition (bounded),
	// rather than sleep through the period: an ADD asking for x is
	// refused, changing nothing, until then.
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctl(t, "--data-dir", b.dir, "ipam", "sync", bConf)
		ctl(t, "--data-dir", a.dir, "ipam", "sync", aConf)
		late := a.execArgs(t, "ADD", "late", pod("late-0"), withIPs(a.json(), x))
		if late.out.Code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("30 s after the sticky period began, asking for %s on a: %d %q, want it free", x, late.out.Code, late.out.Msg)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// withIPs adds runtimeConfig.ips (Multus's "ips" capability) to conf.
func withIPs(conf []byte, ips ...netip.Addr) []byte {
	var m map[string]any
	_ = json.Unmarshal(conf, &m)
	var s []string
	for _, ip := range ips {
		s = append(s, ip.String())
	}
	m["runtimeConfig"] = map[string]any{"ips": s}
	b, _ := json.Marshal(m)
	return b
}

// TestNodeAgentPublishesHolds: with the node agent running (medianetd
// --cni-conf-dir, as the DaemonSet runs it), nobody runs a sync by hand:
// the agent syncs soon after the plugin reports a DEL, so a StatefulSet pod
// deleted on node a and started on node b a few seconds later keeps its
// address.
func TestNodeAgentPublishesHolds(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	ek := map[string]any{"endpoints": srv.Endpoints(), "prefix": "/medianet-agent"}
	sticky := map[string]any{"sticky": "10m"}
	a := netConf{node: "a", dir: t.TempDir(), name: "media", subnet: "10.96.0.0/24", blockSize: 28, etcd: ek, extra: sticky}
	b := netConf{node: "b", dir: t.TempDir(), name: "media", subnet: "10.96.0.0/24", blockSize: 28, etcd: ek, extra: sticky}
	confDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(confDir, "10-media.conf"), a.json(), 0o644); err != nil {
		t.Fatal(err)
	}
	agent := exec.Command(binary("medianetd"), "--cni-conf-dir", confDir, "--data-dir", a.dir, "--node", "a",
		"--metrics-listen", "127.0.0.1:0", "--etcd-sync-interval", "1h")
	var log bytes.Buffer
	agent.Stdout, agent.Stderr = &log, &log
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { agent.Process.Kill(); agent.Wait() })
	waitFor(t, "the agent's report socket", 10*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(a.dir, "metrics.sock"))
		return err == nil
	})
	x, r := a.podAdd(t, "sandbox-1", "jvb-0")
	if !x.IsValid() {
		t.Fatalf("ADD on a: %d %q", r.out.Code, r.out.Msg)
	}
	a.podDel(t, "sandbox-1", "jvb-0")
	// The agent publishes the hold soon after the DEL's report.
	cli, err := etcdstore.New(etcdstore.Config{Endpoints: srv.Endpoints()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	waitFor(t, "the agent to publish jvb-0's hold", 15*time.Second, func() bool {
		v, err := cli.RawGet(context.Background(), "/medianet-agent/networks/media/sticky/media/jvb-0/net1")
		return err == nil && strings.Contains(v, `"hold":true`)
	})
	if got, r := b.podAdd(t, "sandbox-2", "jvb-0"); got != x {
		t.Errorf("jvb-0 on node b: %s (%d %q), want %s", got, r.out.Code, r.out.Msg, x)
	}
	if t.Failed() {
		t.Logf("agent log:\n%s", log.String())
	}
}

func waitFor(t *testing.T, what string, d time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
