package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/medianet/medianet/ipam"
	"github.com/medianet/medianet/ipam/kubestore"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"
)

// Kube says how to reach a Kubernetes API server with medianet's CRDs
// and RBAC installed (internal/kubetest starts one).
type Kube struct {
	// AgentKubeconfig is the nodes' identity: the agent's ServiceAccount,
	// with the least privilege deploy/kubernetes/ipam-rbac.yaml grants.
	AgentKubeconfig string
	// AdminKubeconfig is the simulator's own: it reads what the
	// invariants check, sets each world up and deletes lost nodes' Node
	// objects.
	AdminKubeconfig string
}

// The simulator's requests are not rate limited: the API server is its
// own, and a limiter on the wall clock would only slow the runs.
const simQPS = 100000

var (
	blocksGVR   = schema.GroupVersionResource{Group: kubestore.Group, Version: kubestore.Version, Resource: "ipamblocks"}
	networksGVR = schema.GroupVersionResource{Group: kubestore.Group, Version: kubestore.Version, Resource: "ipamnetworks"}
	stickiesGVR = schema.GroupVersionResource{Group: kubestore.Group, Version: kubestore.Version, Resource: "ipamstickies"}
	nodesGVR    = schema.GroupVersionResource{Version: "v1", Resource: "nodes"}
)

func (k *Kube) adminClient() (dynamic.Interface, error) {
	rc, err := clientcmd.BuildConfigFromFlags("", k.AdminKubeconfig)
	if err != nil {
		return nil, fmt.Errorf("sim: admin kubeconfig %s: %w", k.AdminKubeconfig, err)
	}
	rc.QPS, rc.Burst = simQPS, 2*simQPS
	return dynamic.NewForConfig(rc)
}

// kubeBackend is a world's Kubernetes API: the real kubestore source,
// with the nodes' Node objects created for the world (their UIDs are
// what ReclaimGone compares). Worlds run one after another on the
// server: each starts by removing what the one before left.
type kubeBackend struct {
	kc    *kubestore.Client
	admin dynamic.Interface
	nodes int
}

func newKubeBackend(k *Kube, admin dynamic.Interface, w *World, nodes int) (*kubeBackend, error) {
	kc, err := kubestore.New(kubestore.Config{Kubeconfig: k.AgentKubeconfig, RequestTimeout: time.Hour,
		IdleRelease: IdleRelease, QPS: simQPS, Hook: w.hook})
	if err != nil {
		return nil, err
	}
	b := &kubeBackend{kc: kc, admin: admin, nodes: nodes}
	if err := b.reset(true); err != nil {
		return nil, err
	}
	return b, nil
}

// reset deletes every IPAMBlock, the network's IPAMNetwork and the Node
// objects of the world's nodes, and with nodes creates those again.
func (b *kubeBackend) reset(nodes bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := b.admin.Resource(blocksGVR).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
		return fmt.Errorf("sim: delete the IPAMBlocks: %w", err)
	}
	if err := b.admin.Resource(stickiesGVR).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
		return fmt.Errorf("sim: delete the IPAMStickies: %w", err)
	}
	if err := b.admin.Resource(networksGVR).Delete(ctx, kubestore.NetworkName(Network), metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("sim: delete IPAMNetwork %s: %w", Network, err)
	}
	for i := range b.nodes {
		if err := b.deleteNode(ctx, nodeName(i)); err != nil {
			return err
		}
		if !nodes {
			continue
		}
		n := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "v1", "kind": "Node", "metadata": map[string]any{"name": nodeName(i)}}}
		if _, err := b.admin.Resource(nodesGVR).Create(ctx, n, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("sim: create Node %s: %w", nodeName(i), err)
		}
	}
	return nil
}

func (b *kubeBackend) deleteNode(ctx context.Context, name string) error {
	err := b.admin.Resource(nodesGVR).Delete(ctx, name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("sim: delete Node %s: %w", name, err)
	}
	return nil
}

func (b *kubeBackend) name() string { return "kube" }

// caps: the kubernetes source refuses a block length other than the one
// its IPAMNetwork records; a forced reclaim deletes the blocks and
// reserves nothing. Sticky networks are drawn as in the etcd world.
func (b *kubeBackend) caps() caps { return caps{ReclaimGone: true, Sticky: true} }

func (b *kubeBackend) source(cfg *ipam.Config, st ipam.Store) (ipam.BlockSource, syncFunc, error) {
	src, err := kubestore.NewSource(b.kc, cfg, st)
	if err != nil {
		return nil, nil, err
	}
	return src, syncOf(src.SyncIdle), nil
}

// reclaim is `medianetctl ipam reclaim --kubeconfig` with --node NAME
// [--force], or with --gone.
func (b *kubeBackend) reclaim(ctx context.Context, node string, s Step) (bool, error) {
	var res kubestore.ReclaimResult
	var err error
	if s.Gone {
		res, err = b.kc.ReclaimGone(ctx, Network, false)
	} else {
		res, err = b.kc.Reclaim(ctx, Network, node, s.Force, false)
	}
	return err == nil && len(res.Changed) == 0, err
}

// lose deletes the lost node's Node object, as a cloud's node controller
// does for a machine that is gone.
func (b *kubeBackend) lose(node string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return b.deleteNode(ctx, node)
}

// kubeBlock is what the invariants read of an IPAMBlock, decoded here
// rather than by kubestore, the code under test.
type kubeBlock struct {
	Network    string `json:"network"`
	CIDR       string `json:"cidr"`
	Node       string `json:"node"`
	InUse      int64  `json:"inUse"`
	EmptySince string `json:"emptySince,omitempty"`
}

// read lists every IPAMBlock: the claims are those of the network, the
// residue all of them (the server holds only this world's).
func (b *kubeBackend) read() (*clusterState, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := b.admin.Resource(blocksGVR).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	cs := newClusterState()
	for _, o := range l.Items {
		var kb kubeBlock
		kb.Network, _, _ = unstructured.NestedString(o.Object, "spec", "network")
		kb.CIDR, _, _ = unstructured.NestedString(o.Object, "spec", "cidr")
		kb.Node, _, _ = unstructured.NestedString(o.Object, "spec", "node")
		kb.InUse, _, _ = unstructured.NestedInt64(o.Object, "status", "inUse")
		kb.EmptySince, _, _ = unstructured.NestedString(o.Object, "status", "emptySince")
		js, _ := json.Marshal(kb)
		cs.residue = append(cs.residue, "IPAMBlock "+o.GetName()+" = "+string(js))
		p, err := netip.ParsePrefix(kb.CIDR)
		if err != nil || kb.Network != Network {
			continue
		}
		cs.claims[p] = kb.Node
	}
	return cs, b.readSticky(ctx, cs)
}

// readSticky adds every IPAMSticky of the network to cs, decoded here
// rather than by kubestore, as the blocks are.
func (b *kubeBackend) readSticky(ctx context.Context, cs *clusterState) error {
	l, err := b.admin.Resource(stickiesGVR).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	for _, o := range l.Items {
		spec, _, _ := unstructured.NestedMap(o.Object, "spec")
		js, _ := json.Marshal(spec)
		cs.residue = append(cs.residue, "IPAMSticky "+o.GetName()+" = "+string(js))
		str := func(k string) string { v, _ := spec[k].(string); return v }
		if str("network") != Network {
			continue
		}
		r := stickyRec{Node: str("node"), Hold: str("state") == "held"}
		ips, _, _ := unstructured.NestedStringSlice(o.Object, "spec", "ips")
		for _, s := range ips {
			ip, err := netip.ParseAddr(s)
			if err != nil {
				return fmt.Errorf("sim: IPAMSticky %s: address %q: %w", o.GetName(), s, err)
			}
			r.IPs = append(r.IPs, ip)
		}
		cs.addSticky(str("workload")+"/"+str("ifname"), r)
	}
	return nil
}

// stamp names every IPAMBlock and IPAMNetwork with its resourceVersion
// (the list's own revision moves with the API server's other writes).
func (b *kubeBackend) stamp() string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var sb strings.Builder
	sb.WriteString("objects:")
	for _, gvr := range []schema.GroupVersionResource{blocksGVR, networksGVR, stickiesGVR} {
		l, err := b.admin.Resource(gvr).List(ctx, metav1.ListOptions{})
		if err != nil {
			return ""
		}
		for _, o := range l.Items {
			fmt.Fprintf(&sb, "%s %s@%s;", gvr.Resource, o.GetName(), o.GetResourceVersion())
		}
	}
	return sb.String()
}

// close removes the world's objects; the next world checks it did.
func (b *kubeBackend) close() { _ = b.reset(false) }
