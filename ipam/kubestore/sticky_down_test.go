package kubestore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/medianet/medianet/internal/kubetest"
	"github.com/medianet/medianet/ipam/kubestore"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
)

// testResumeServerDown: with the API server hung (SIGSTOP), then killed,
// a sticky workload starting on the node that holds its address, or on
// another, gets a new address (Resume cannot decide); the hold and its
// record stay as they were, and nothing is live twice. Once the server
// is back, the workload starting elsewhere gets its address.
func testResumeServerDown(t *testing.T, srv *kubetest.Server) {
	nodes := newStickyNodes(t, srv, "st-down", "10.72.0.0/24", 28, "a", "b")
	a, b := nodes[0], nodes[1]
	for _, n := range nodes { // a short timeout: each Resume waits for it
		n.c = agentClient(t, srv, func(k *kubestore.Config) { k.RequestTimeout = time.Second })
		cfg := netConfig("st-down", "10.72.0.0/24", 28, n.name)
		cfg.Sticky = 30 * time.Minute
		n.a, n.src = newAllocator(t, n.c, cfg, n.st)
		n.a.Now = func() time.Time { return n.now }
	}
	b.add(t, "b-warm", "") // b claims a block with room
	b.del(t, "b-warm")
	t.Cleanup(func() { _ = srv.Resume() })
	for _, phase := range []struct {
		name string
		down func() error
	}{
		{"hung", srv.Pause},
		{"killed", func() error { srv.Kill(); return nil }},
	} {
		w := "media/jvb-" + phase.name
		x := a.add(t, "a-"+w, w).IPs[0]
		a.del(t, "a-"+w)
		before := decision(record(t, srv, "st-down", w))
		if before == "none" {
			t.Fatalf("%s: no record after DEL", w)
		}
		if err := phase.down(); err != nil {
			t.Fatal(err)
		}
		for _, n := range nodes {
			cid := fmt.Sprintf("%s-%s-down", n.name, w)
			got := n.add(t, cid, w).IPs[0]
			if got == x {
				t.Fatalf("API server %s: %s on node %s got %s, held on a, without the API deciding", phase.name, w, n.name, x)
			}
			liveTwice(t, x, a, b)
			n.del(t, cid) // its hold is the older one: this address is freed
		}
		if !a.used(t, x) {
			t.Fatalf("API server %s: a's hold of %s for %s went", phase.name, x, w)
		}
		if phase.name == "hung" {
			if err := srv.Resume(); err != nil {
				t.Fatal(err)
			}
		} else if err := srv.Restart(); err != nil {
			t.Fatal(err)
		}
		if got := decision(record(t, srv, "st-down", w)); got != before {
			t.Fatalf("record of %s after the server was %s: %s, want %s", w, phase.name, got, before)
		}
		if got := b.add(t, "b-"+w, w).IPs[0]; got != x {
			t.Fatalf("%s on b once the server is back: %s, want %s", w, got, x)
		}
		a.sync(t)
		b.sync(t)
		liveTwice(t, x, a, b)
		if !a.used(t, x) {
			t.Errorf("a freed %s, live on b", x)
		}
	}
}

// testStickySchema: the API server refuses malformed records, records
// whose identity changes and writes that do not count themselves; the
// agent may list and write records but not get one alone (it reads by
// list), nor delete their CRD.
func testStickySchema(t *testing.T, srv *kubetest.Server) {
	ctx := context.Background()
	res := adminDynamic(t, srv).Resource(stickiesGVR)
	obj := func(name string, spec map[string]any) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": kubestore.Group + "/" + kubestore.Version, "kind": "IPAMSticky",
			"metadata": map[string]any{"name": name}, "spec": spec}}
	}
	good := func() map[string]any {
		return map[string]any{"network": "schema", "workload": "media/jvb-0", "ifname": "eth0", "node": "a",
			"state": "held", "ips": []any{"10.0.0.5"}, "until": "2026-12-03T19:00:00Z", "writes": int64(1)}
	}
	for _, tc := range []struct {
		name string
		mod  func(map[string]any)
	}{
		{"not an IP", func(s map[string]any) { s["ips"] = []any{"10.0.0.300"} }},
		{"held without until", func(s map[string]any) { delete(s, "until") }},
		{"unknown state", func(s map[string]any) { s["state"] = "gone" }},
		{"no addresses", func(s map[string]any) { s["ips"] = []any{} }},
	} {
		spec := good()
		tc.mod(spec)
		if _, err := res.Create(ctx, obj("schema.bad", spec), metav1.CreateOptions{}); !apierrors.IsInvalid(err) {
			t.Errorf("create with %s: %v, want 422 Invalid", tc.name, err)
		}
	}
	o, err := res.Create(ctx, obj("schema.good", good()), metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create a valid record: %v", err)
	}
	for _, tc := range []struct {
		name string
		mod  func(map[string]any)
	}{
		{"same writes", func(s map[string]any) { s["node"] = "b" }},
		{"another workload", func(s map[string]any) { s["workload"] = "media/jvb-1"; s["writes"] = int64(2) }},
	} {
		u := o.DeepCopy()
		spec := good()
		tc.mod(spec)
		u.Object["spec"] = spec
		if _, err := res.Update(ctx, u, metav1.UpdateOptions{}); !apierrors.IsInvalid(err) {
			t.Errorf("update with %s: %v, want 422 Invalid", tc.name, err)
		}
	}
	rc, err := kubetest.RESTConfig(srv.AgentKubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	agent, err := dynamic.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := agent.Resource(stickiesGVR).Get(ctx, "schema.good", metav1.GetOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("agent gets an IPAMSticky: %v, want 403 (it reads by list)", err)
	}
	if _, err := agent.Resource(stickiesGVR).List(ctx, metav1.ListOptions{}); err != nil {
		t.Errorf("agent lists IPAMStickies: %v", err)
	}
	crds := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	if err := agent.Resource(crds).Delete(ctx, "ipamstickies.ipam.medianet.io", metav1.DeleteOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("agent deletes the IPAMSticky CRD: %v, want 403", err)
	}
	if err := res.Delete(ctx, "schema.good", metav1.DeleteOptions{}); err != nil {
		t.Error(err)
	}
}
