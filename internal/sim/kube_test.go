package sim

import (
	"context"
	"net/netip"
	"os"
	"testing"

	"github.com/medianet/medianet/internal/kubetest"
	"github.com/medianet/medianet/ipam/kubestore"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// testKubeRunner starts a real kube-apiserver (kubetest skips the test
// only when there is no binary, saying why) and returns a runner whose
// worlds run against it.
func testKubeRunner(t *testing.T) *Runner {
	t.Helper()
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		t.Setenv("TMPDIR", "/dev/shm")
	}
	srv := kubetest.Start(t)
	r := &Runner{Dir: t.TempDir(), Kube: &Kube{AgentKubeconfig: srv.AgentKubeconfig, AdminKubeconfig: srv.AdminKubeconfig}}
	if err := r.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// plantBlock creates the IPAMBlock of block for node as the
// administrator, as a bug would leave it.
func plantBlock(t *testing.T, r *Runner, block, node string) {
	t.Helper()
	p := netip.MustParsePrefix(block)
	o := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": kubestore.Group + "/" + kubestore.Version,
		"kind":       "IPAMBlock",
		"metadata": map[string]any{"name": kubestore.BlockName(Network, p),
			"labels": map[string]any{kubestore.NetworkLabel: kubestore.NetworkName(Network)}},
		"spec": map[string]any{"network": Network, "cidr": block, "node": node},
	}}
	if _, err := r.admin.Resource(blocksGVR).Create(context.Background(), o, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestKube runs the kube world's tests on one API server (it takes a
// while to start).
func TestKube(t *testing.T) {
	r := testKubeRunner(t)
	t.Run("InvariantsCatchPlantedStates", func(t *testing.T) {
		testPlantedStates(t, r, func(_ *World, block, node string) { plantBlock(t, r, block, node) })
	})
	t.Run("DrainReportsLeftBlocks", func(t *testing.T) {
		w, err := r.newWorld(3)
		if err != nil {
			t.Fatal(err)
		}
		defer w.close()
		plantBlock(t, r, "10.0.0.64/28", "n7") // a node no world has: nothing gives it back
		w.apply(Step{Kind: "drain"})
		if w.violation == nil || w.violation.Kind != "drain-kube" {
			t.Errorf("drain with an IPAMBlock of node n7 left: violation %v, want drain-kube", w.violation)
		}
	})
	t.Run("StampSeesEveryWrite", func(t *testing.T) {
		w, err := r.newWorld(3)
		if err != nil {
			t.Fatal(err)
		}
		defer w.close()
		empty := w.be.stamp()
		if empty == "" || w.be.stamp() != empty {
			t.Fatalf("stamp of an unchanged world: %q then %q, want one non-empty value", empty, w.be.stamp())
		}
		plantBlock(t, r, "10.0.0.16/28", "n0")
		created := w.be.stamp()
		name := kubestore.BlockName(Network, netip.MustParsePrefix("10.0.0.16/28"))
		o, err := r.admin.Resource(blocksGVR).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := unstructured.SetNestedField(o.Object, int64(3), "status", "inUse"); err != nil {
			t.Fatal(err)
		}
		if _, err := r.admin.Resource(blocksGVR).UpdateStatus(context.Background(), o, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		marked := w.be.stamp()
		if err := r.admin.Resource(blocksGVR).Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		if deleted := w.be.stamp(); created == empty || marked == created || deleted == marked {
			t.Errorf("stamps empty %q, created %q, marked %q, deleted %q: want each write to change it", empty, created, marked, deleted)
		}
	})
	t.Run("RunIsDeterministic", func(t *testing.T) { testDeterministic(t, r) })
	t.Run("Regressions", func(t *testing.T) { testRegressions(t, r, "kube") })
}
