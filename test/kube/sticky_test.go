package kube

import (
	"bytes"
	"context"
	"encoding/json"
	"net/netip"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/medianet/medianet/internal/kubetest"
	"github.com/medianet/medianet/ipam/kubestore"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
)

// runPod is run for a pod: CNI_ARGS name its namespace and name, as
// kubelet and containerd pass them, so the workload is "media/<pod>".
func runPod(t *testing.T, command, cid, pod string, ipamConf map[string]any) outcome {
	t.Helper()
	conf, _ := json.Marshal(map[string]any{"cniVersion": "1.1.0", "name": "media-kube", "type": "medianet-ipam", "ipam": ipamConf})
	cmd := exec.Command(filepath.Join(bins, "medianet-ipam"))
	cmd.Env = []string{
		"CNI_COMMAND=" + command, "CNI_CONTAINERID=" + cid, "CNI_IFNAME=net1",
		"CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=media;K8S_POD_NAME=" + pod,
		"CNI_NETNS=/var/run/netns/medianet-kube-none", "CNI_PATH=/nonexistent", "PATH=/usr/bin:/bin",
	}
	cmd.Stdin = bytes.NewReader(conf)
	var out bytes.Buffer
	cmd.Stdout = &out
	_ = cmd.Run() // judged from stdout: a result or a CNI error
	var o outcome
	if out.Len() > 0 {
		if err := json.Unmarshal(out.Bytes(), &o); err != nil {
			t.Fatalf("%s %s: stdout is not JSON: %v: %q", command, cid, err, out.String())
		}
	}
	return o
}

// TestStickyPodMovesNode: through medianet-ipam and medianet-ipam-kube
// against a real API server, a sticky pod deleted on node a gets its
// address back on node b; the IPAMSticky says held on a, then live on b;
// node a gives the address to no other pod, nor to the same pod started
// on a again while it runs on b.
func TestStickyPodMovesNode(t *testing.T) {
	srv := kubetest.Start(t)
	conf := func(node string) map[string]any {
		return map[string]any{
			"type": "medianet-ipam", "subnet": "10.97.0.0/24", "blockSize": 28, "sticky": "30m",
			"node": node, "dataDir": filepath.Join(t.TempDir(), node),
			"kubernetes": map[string]any{"kubeconfig": srv.AgentKubeconfig, "requestTimeout": "30s"},
		}
	}
	a, b := conf("a"), conf("b")
	addr := func(o outcome) netip.Addr {
		t.Helper()
		if o.Code != 0 || len(o.IPs) != 1 {
			t.Fatalf("ADD: code %d %q", o.Code, o.Msg)
		}
		return netip.MustParsePrefix(o.IPs[0].Address).Addr()
	}
	x := addr(runPod(t, "ADD", "a-c1", "jvb-0", a))
	if o := runPod(t, "DEL", "a-c1", "jvb-0", a); o.Code != 0 {
		t.Fatalf("DEL on a: code %d %q", o.Code, o.Msg)
	}
	rec := func() (node, state string, ips []string) {
		t.Helper()
		rc, err := kubetest.RESTConfig(srv.AdminKubeconfig)
		if err != nil {
			t.Fatal(err)
		}
		dyn, err := dynamic.NewForConfig(rc)
		if err != nil {
			t.Fatal(err)
		}
		gvr := schema.GroupVersionResource{Group: kubestore.Group, Version: kubestore.Version, Resource: "ipamstickies"}
		o, err := dyn.Resource(gvr).Get(context.Background(), kubestore.StickyName("media-kube", "media/jvb-0", "net1"), metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return "", "", nil
		}
		if err != nil {
			t.Fatal(err)
		}
		node, _, _ = unstructured.NestedString(o.Object, "spec", "node")
		state, _, _ = unstructured.NestedString(o.Object, "spec", "state")
		ips, _, _ = unstructured.NestedStringSlice(o.Object, "spec", "ips")
		return node, state, ips
	}
	if node, state, ips := rec(); node != "a" || state != "held" || len(ips) != 1 || ips[0] != x.String() {
		t.Fatalf("IPAMSticky after DEL on a: %s %s %v; want a held [%s]", node, state, ips, x)
	}
	if got := addr(runPod(t, "ADD", "b-c1", "jvb-0", b)); got != x {
		t.Fatalf("jvb-0 on node b got %s, want its address %s", got, x)
	}
	if node, state, _ := rec(); node != "b" || state != "live" {
		t.Fatalf("IPAMSticky after the ADD on b: %s %s; want b live", node, state)
	}
	if got := addr(runPod(t, "ADD", "a-c2", "other-0", a)); got == x {
		t.Fatalf("node a gave %s, live on b, to another pod", x)
	}
	if got := addr(runPod(t, "ADD", "a-c3", "jvb-0", a)); got == x {
		t.Fatalf("jvb-0 started on a again got %s, live on b", x)
	}
	for _, d := range []struct {
		cid, pod string
		conf     map[string]any
	}{{"a-c2", "other-0", a}, {"a-c3", "jvb-0", a}, {"b-c1", "jvb-0", b}} {
		if o := runPod(t, "DEL", d.cid, d.pod, d.conf); o.Code != 0 {
			t.Errorf("DEL %s: code %d %q", d.cid, o.Code, o.Msg)
		}
	}
	if node, state, _ := rec(); node != "b" || state != "held" {
		t.Errorf("IPAMSticky after the DEL on b: %s %s; want b held", node, state)
	}
}
