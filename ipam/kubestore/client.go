package kubestore

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net/netip"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Group and Version of medianet's IPAM objects.
const (
	Group   = "ipam.medianet.io"
	Version = "v1alpha1"
	// NetworkLabel on an IPAMBlock holds the object name of its network.
	NetworkLabel = Group + "/network"
)

// Defaults of Config.
const (
	DefaultRequestTimeout = 2 * time.Second
	DefaultIdleRelease    = 10 * time.Minute
	DefaultQPS            = 50
)

var (
	blocksGVR   = schema.GroupVersionResource{Group: Group, Version: Version, Resource: "ipamblocks"}
	networksGVR = schema.GroupVersionResource{Group: Group, Version: Version, Resource: "ipamnetworks"}
	nodesGVR    = schema.GroupVersionResource{Version: "v1", Resource: "nodes"}
)

// Config says how to reach the API server.
type Config struct {
	// Kubeconfig is the path of a kubeconfig file; empty means the
	// in-cluster configuration (the pod's ServiceAccount).
	Kubeconfig string
	// RequestTimeout bounds one whole operation, such as a claim with
	// its conflicts (default DefaultRequestTimeout).
	RequestTimeout time.Duration
	// IdleRelease is how long a block stays empty before SyncIdle gives
	// it back (default DefaultIdleRelease; negative: never).
	IdleRelease time.Duration
	// QPS is how many requests a second the client may send, with bursts
	// of twice as many (default DefaultQPS).
	QPS float32
	// Hook, when set, is called before every API request with the
	// request's context and a description ("create ipamblocks"); an error
	// it returns is that request's error, reported as ErrUnavailable (as
	// from a server that cannot be reached). For the deterministic
	// simulator (internal/sim): a yield point per request, as
	// etcdstore.Config.Hook.
	Hook func(ctx context.Context, op string) error
}

// Client talks to the API server; it connects lazily, on first use.
type Client struct {
	cfg Config
	rc  *rest.Config
	dyn dynamic.Interface
	now func() time.Time

	mu     sync.Mutex
	failed int64 // API calls that failed with ErrUnavailable
	calls  int64 // API calls made
}

// New returns a client for cfg. It reads the kubeconfig (or the
// in-cluster configuration) but does not contact the API server.
func New(cfg Config) (*Client, error) {
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.IdleRelease == 0 {
		cfg.IdleRelease = DefaultIdleRelease
	}
	var rc *rest.Config
	var err error
	if cfg.Kubeconfig == "" {
		rc, err = rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("kubernetes.kubeconfig is empty and this is not a pod with a ServiceAccount (%v): name a kubeconfig file: %w", err, ErrConfig)
		}
	} else {
		rc, err = clientcmd.BuildConfigFromFlags("", cfg.Kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("kubernetes.kubeconfig %s: %v: %w", cfg.Kubeconfig, err, ErrConfig)
		}
	}
	if cfg.QPS <= 0 {
		cfg.QPS = DefaultQPS
	}
	rc.Timeout = cfg.RequestTimeout
	rc.QPS, rc.Burst = cfg.QPS, int(2*cfg.QPS)
	rc.UserAgent = "medianet-ipam"
	dc, err := dynamic.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes.kubeconfig %s: %v: %w", cfg.Kubeconfig, err, ErrConfig)
	}
	var dyn dynamic.Interface = dc
	if cfg.Hook != nil {
		dyn = hookedClient{dc, cfg.Hook}
	}
	return &Client{cfg: cfg, rc: rc, dyn: dyn, now: time.Now}, nil
}

// Server returns the API server's address, for messages.
func (c *Client) Server() string { return c.rc.Host }

// Calls returns the API calls made and those that failed as unavailable.
func (c *Client) Calls() (calls, failed int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls, c.failed
}

// bound limits ctx to the request timeout.
func (c *Client) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.cfg.RequestTimeout)
}

// wrap maps an API error to the package's sentinels, naming what was
// done and the server. Errors callers test (409 AlreadyExists, 409
// Conflict, 404) are kept matchable with apierrors.
func (c *Client) wrap(what string, err error) error {
	c.mu.Lock()
	c.calls++
	c.mu.Unlock()
	if err == nil {
		return nil
	}
	switch {
	case apierrors.IsAlreadyExists(err), apierrors.IsConflict(err), apierrors.IsNotFound(err):
		return fmt.Errorf("%s: %w", what, err)
	case apierrors.IsUnauthorized(err), apierrors.IsForbidden(err):
		return fmt.Errorf("%s at %s: %v: %w", what, c.rc.Host, err, ErrAuth)
	case apierrors.IsInvalid(err), apierrors.IsBadRequest(err):
		return fmt.Errorf("%s at %s: %v: %w", what, c.rc.Host, err, ErrConfig)
	}
	c.mu.Lock()
	c.failed++
	c.mu.Unlock()
	return fmt.Errorf("%s at %s: %v: %w", what, c.rc.Host, err, ErrUnavailable)
}

// Block is one IPAMBlock: a node's claim of a block.
type Block struct {
	Network string
	CIDR    netip.Prefix
	Node    string
	// NodeUID is the UID of the claimant's Node object when it has one.
	NodeUID string
	// InUse and EmptySince are the node's last published usage.
	InUse      int
	EmptySince time.Time

	name, rv string
	uid      types.UID
}

// Empty reports whether the node marked the block empty.
func (b Block) Empty() bool { return !b.EmptySince.IsZero() }

// Name returns the object's name.
func (b Block) Name() string { return b.name }

// NetworkName is the object name of network: the network's name when it is
// a DNS label, else its sanitized form with a hash of the name.
func NetworkName(network string) string {
	ok := len(network) > 0 && len(network) <= 54
	for i := 0; ok && i < len(network); i++ {
		ch := network[i]
		alnum := ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9'
		ok = alnum || ch == '-' && i > 0 && i < len(network)-1
	}
	if ok {
		return network
	}
	var sb strings.Builder
	for _, r := range strings.ToLower(network) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			sb.WriteRune(r)
		} else {
			sb.WriteByte('-')
		}
		if sb.Len() >= 40 {
			break
		}
	}
	h := fnv.New32a()
	h.Write([]byte(network))
	return strings.Trim("x-"+sb.String(), "-") + fmt.Sprintf("-%08x", h.Sum32())
}

// BlockName is the object name of block p of network: "<net>.<addr>-<len>"
// with the address's dots and colons as dashes.
func BlockName(network string, p netip.Prefix) string {
	a := strings.NewReplacer(".", "-", ":", "-").Replace(p.Addr().String())
	if strings.HasPrefix(a, "-") {
		a = "0" + a
	}
	return fmt.Sprintf("%s.%s-%d", NetworkName(network), a, p.Bits())
}

func (b Block) object() *unstructured.Unstructured {
	spec := map[string]any{"network": b.Network, "cidr": b.CIDR.String(), "node": b.Node}
	if b.NodeUID != "" {
		spec["nodeUID"] = b.NodeUID
	}
	o := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": Group + "/" + Version,
		"kind":       "IPAMBlock",
		"metadata": map[string]any{
			"name":   BlockName(b.Network, b.CIDR),
			"labels": map[string]any{NetworkLabel: NetworkName(b.Network)},
		},
		"spec": spec,
	}}
	if b.rv != "" {
		o.SetResourceVersion(b.rv)
	}
	status := map[string]any{"inUse": int64(b.InUse)}
	if b.Empty() {
		status["emptySince"] = b.EmptySince.UTC().Format(time.RFC3339)
	}
	o.Object["status"] = status
	return o
}

func blockFrom(o *unstructured.Unstructured) (Block, error) {
	net, _, _ := unstructured.NestedString(o.Object, "spec", "network")
	cidr, _, _ := unstructured.NestedString(o.Object, "spec", "cidr")
	node, _, _ := unstructured.NestedString(o.Object, "spec", "node")
	uid, _, _ := unstructured.NestedString(o.Object, "spec", "nodeUID")
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return Block{}, fmt.Errorf("IPAMBlock %s: spec.cidr %q: %w", o.GetName(), cidr, err)
	}
	b := Block{Network: net, CIDR: p, Node: node, NodeUID: uid, name: o.GetName(), rv: o.GetResourceVersion(), uid: o.GetUID()}
	inUse, _, _ := unstructured.NestedInt64(o.Object, "status", "inUse")
	b.InUse = int(inUse)
	if s, ok, _ := unstructured.NestedString(o.Object, "status", "emptySince"); ok && s != "" {
		b.EmptySince, _ = time.Parse(time.RFC3339, s)
	}
	return b, nil
}

// Blocks lists the claims of network (all nodes' when node is empty).
func (c *Client) Blocks(ctx context.Context, network, node string) ([]Block, error) {
	ctx, cancel := c.bound(ctx)
	defer cancel()
	return c.list(ctx, network, node)
}

func (c *Client) list(ctx context.Context, network, node string) ([]Block, error) {
	opts := metav1.ListOptions{}
	if network != "" {
		opts.LabelSelector = NetworkLabel + "=" + NetworkName(network)
	}
	l, err := c.dyn.Resource(blocksGVR).List(ctx, opts)
	if err = c.wrap(fmt.Sprintf("list IPAMBlocks of network %q", network), err); err != nil {
		return nil, err
	}
	var out []Block
	for i := range l.Items {
		b, err := blockFrom(&l.Items[i])
		if err != nil || (network != "" && b.Network != network) || (node != "" && b.Node != node) {
			continue
		}
		out = append(out, b)
	}
	return out, nil
}

// get reads block p of network; ok is false when it does not exist.
func (c *Client) get(ctx context.Context, network string, p netip.Prefix) (Block, bool, error) {
	o, err := c.dyn.Resource(blocksGVR).Get(ctx, BlockName(network, p), metav1.GetOptions{})
	if err = c.wrap(fmt.Sprintf("read IPAMBlock %s", BlockName(network, p)), err); err != nil {
		if apierrors.IsNotFound(err) {
			return Block{}, false, nil
		}
		return Block{}, false, err
	}
	b, err := blockFrom(o)
	return b, err == nil, err
}

// updateStatus writes b's status if the object is still at b's
// resourceVersion; ok is false when it changed meanwhile.
func (c *Client) updateStatus(ctx context.Context, b Block) (Block, bool, error) {
	o, err := c.dyn.Resource(blocksGVR).UpdateStatus(ctx, b.object(), metav1.UpdateOptions{})
	if err = c.wrap("mark IPAMBlock "+b.name, err); err != nil {
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			return b, false, nil
		}
		return b, false, err
	}
	nb, err := blockFrom(o)
	return nb, err == nil, err
}

// deleteIfUnchanged deletes b's object if it is still at b's
// resourceVersion; ok is false when it changed or went meanwhile.
func (c *Client) deleteIfUnchanged(ctx context.Context, b Block) (bool, error) {
	rv, uid := b.rv, b.uid
	pre := metav1.Preconditions{ResourceVersion: &rv}
	if uid != "" {
		pre.UID = &uid
	}
	err := c.dyn.Resource(blocksGVR).Delete(ctx, b.name, metav1.DeleteOptions{Preconditions: &pre})
	if err = c.wrap("delete IPAMBlock "+b.name, err); err != nil {
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			return false, nil
		}
		return false, err
	}
	return true, nil
}

// nodeUID returns the UID of the Node object named node, "" when there is
// none (a host outside the cluster's nodes) or it may not be read.
func (c *Client) nodeUID(ctx context.Context, node string) (string, error) {
	o, err := c.dyn.Resource(nodesGVR).Get(ctx, node, metav1.GetOptions{})
	err = c.wrap("read Node "+node, err)
	switch {
	case err == nil:
		return string(o.GetUID()), nil
	case apierrors.IsNotFound(err), errors.Is(err, ErrAuth):
		return "", nil
	}
	return "", err
}
