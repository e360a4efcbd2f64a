package kubestore

import (
	"context"
	"fmt"
	"hash/fnv"
	"net/netip"
	"strings"
	"time"

	"github.com/medianet/medianet/ipam"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// conflicts bounds how many 409 answers a claim takes before it lists the
// network's blocks again, and relists how often it does.
const (
	conflicts = 8
	relists   = 3
)

// Subnet is one subnet of a network and the length of its blocks.
type Subnet struct {
	Prefix    netip.Prefix
	BlockBits int
}

// Network is what the IPAMNetwork object records: a network's subnets
// and block lengths, and (not recorded) its excluded prefixes.
type Network struct {
	Name    string
	Subnets []Subnet
	Exclude []netip.Prefix
}

// NetworkFromConfig returns the Network an ipam.Config describes.
func NetworkFromConfig(cfg *ipam.Config) Network {
	n := Network{Name: cfg.Network, Exclude: cfg.Exclude}
	for _, s := range cfg.Subnets {
		n.Subnets = append(n.Subnets, Subnet{Prefix: s.Prefix.Masked(), BlockBits: cfg.BlockBits(s.Prefix)})
	}
	return n
}

func (n Network) subnet(p netip.Prefix) (Subnet, bool) {
	for _, s := range n.Subnets {
		if s.Prefix == p.Masked() {
			return s, true
		}
	}
	return Subnet{}, false
}

func (n Network) describe() string {
	var parts []string
	for _, s := range n.Subnets {
		parts = append(parts, fmt.Sprintf("%s in /%d blocks", s.Prefix, s.BlockBits))
	}
	return strings.Join(parts, ", ")
}

func (n Network) object() *unstructured.Unstructured {
	var subs []any
	for _, s := range n.Subnets {
		subs = append(subs, map[string]any{"cidr": s.Prefix.String(), "blockBits": int64(s.BlockBits)})
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": Group + "/" + Version,
		"kind":       "IPAMNetwork",
		"metadata":   map[string]any{"name": NetworkName(n.Name)},
		"spec":       map[string]any{"subnets": subs},
	}}
}

func recorded(o *unstructured.Unstructured) Network {
	var n Network
	subs, _, _ := unstructured.NestedSlice(o.Object, "spec", "subnets")
	for _, s := range subs {
		m, _ := s.(map[string]any)
		cidr, _ := m["cidr"].(string)
		bits, _ := m["blockBits"].(int64)
		p, _ := netip.ParsePrefix(cidr)
		n.Subnets = append(n.Subnets, Subnet{Prefix: p, BlockBits: int(bits)})
	}
	return n
}

// CheckNetwork creates n's IPAMNetwork when there is none and returns an
// error wrapping ErrConfigMismatch when the recorded one differs.
func (c *Client) CheckNetwork(ctx context.Context, n Network) error {
	ctx, cancel := c.bound(ctx)
	defer cancel()
	return c.ensureNetwork(ctx, n)
}

func (c *Client) ensureNetwork(ctx context.Context, n Network) error {
	name := NetworkName(n.Name)
	o, err := c.dyn.Resource(networksGVR).Get(ctx, name, metav1.GetOptions{})
	err = c.wrap(fmt.Sprintf("read IPAMNetwork %s of network %q", name, n.Name), err)
	if apierrors.IsNotFound(err) {
		o, err = c.dyn.Resource(networksGVR).Create(ctx, n.object(), metav1.CreateOptions{})
		err = c.wrap(fmt.Sprintf("record IPAMNetwork %s of network %q", name, n.Name), err)
		if apierrors.IsAlreadyExists(err) {
			return c.ensureNetwork(ctx, n)
		}
	}
	if err != nil {
		return err
	}
	got := recorded(o)
	same := len(got.Subnets) == len(n.Subnets)
	for i := 0; same && i < len(n.Subnets); i++ {
		same = got.Subnets[i] == n.Subnets[i]
	}
	if !same {
		return fmt.Errorf("network %q: this node's config has %s but IPAMNetwork %s at %s records %s; "+
			"fix this node's subnet or blockSize (the kubernetes source keeps one block length per subnet), "+
			"or delete that object if no node uses the network any more: %w",
			n.Name, n.describe(), name, c.rc.Host, got.describe(), ErrConfigMismatch)
	}
	return nil
}

// outcome of one create.
type outcome int

const (
	claimed outcome = iota // this call created the claim
	adopted                // the block was already this node's
	taken                  // another node holds it
)

// tryClaim creates b's IPAMBlock for node; on 409 it reads the object and
// adopts it when it is node's (unmarking it empty, with its
// resourceVersion, so that a give-back racing with it fails).
func (c *Client) tryClaim(ctx context.Context, n Network, node, uid string, b netip.Prefix) (outcome, error) {
	blk := Block{Network: n.Name, CIDR: b, Node: node, NodeUID: uid}
	_, err := c.dyn.Resource(blocksGVR).Create(ctx, blk.object(), metav1.CreateOptions{})
	err = c.wrap(fmt.Sprintf("claim block %s for node %q on network %q", b, node, n.Name), err)
	if err == nil {
		return claimed, nil
	}
	if !apierrors.IsAlreadyExists(err) {
		return taken, err
	}
	for range 3 {
		cur, ok, err := c.get(ctx, n.Name, b)
		if err != nil || !ok {
			return taken, err // gone meanwhile: the caller moves on
		}
		if cur.Node != node || cur.Network != n.Name {
			return taken, nil
		}
		if !cur.Empty() {
			return adopted, nil
		}
		cur.EmptySince = time.Time{}
		if _, ok, err := c.updateStatus(ctx, cur); err != nil || ok {
			return adopted, err
		}
	}
	return taken, c.wrap("claim block "+b.String(), fmt.Errorf("its IPAMBlock kept changing"))
}

// ClaimNext claims a block of subnet for node and returns it, skipping
// the blocks in held (the node's own) and, after one list of the
// network's claims, those claimed by others. A block the API records as
// node's but held does not have (left by a crash between the claim and
// the local record) is returned as it is.
func (c *Client) ClaimNext(ctx context.Context, n Network, node, uid string, subnet netip.Prefix, held ipam.Held, claims []Block) (netip.Prefix, error) {
	s, ok := n.subnet(subnet)
	if !ok {
		return netip.Prefix{}, fmt.Errorf("network %q: %s is not one of its subnets: %w", n.Name, subnet, ErrConfig)
	}
	seen := map[netip.Prefix]bool{}
	mark := func(bs []Block) {
		for _, b := range bs {
			if b.Node != node {
				seen[b.CIDR] = true
			}
		}
	}
	mark(claims)
	seed := seedOf(node)
	for try := 0; try < conflicts*relists; try++ {
		if try > 0 && try%conflicts == 0 {
			fresh, err := c.list(ctx, n.Name, "")
			if err != nil {
				return netip.Prefix{}, err
			}
			mark(fresh)
		}
		b, ok, err := n.walk(s, seed, func(p netip.Prefix) bool { return held.Overlaps(p) || seen[p] })
		if err != nil {
			return netip.Prefix{}, err
		}
		if !ok {
			return netip.Prefix{}, fmt.Errorf("network %q subnet %s: every /%d block is claimed or held: %w", n.Name, subnet, s.BlockBits, ErrExhausted)
		}
		out, err := c.tryClaim(ctx, n, node, uid, b)
		if err != nil {
			return netip.Prefix{}, err
		}
		if out != taken {
			return b, nil
		}
		seen[b] = true
	}
	return netip.Prefix{}, c.wrap(fmt.Sprintf("claim a block of %s for node %q on network %q", subnet, node, n.Name),
		fmt.Errorf("lost the race for a free block %d times", conflicts*relists))
}

// ClaimBlock claims block b for node, for a requested address: nil when
// it is free or already node's, ErrNotOwner naming the holder otherwise.
func (c *Client) ClaimBlock(ctx context.Context, n Network, node, uid string, b netip.Prefix) error {
	out, err := c.tryClaim(ctx, n, node, uid, b)
	if err != nil || out != taken {
		return err
	}
	holder := "another node"
	if cur, ok, err := c.get(ctx, n.Name, b); err == nil && ok {
		holder = fmt.Sprintf("node %q", cur.Node)
	}
	return fmt.Errorf("network %q block %s is claimed by %s (IPAMBlock %s): %w", n.Name, b, holder, BlockName(n.Name, b), ErrNotOwner)
}

func seedOf(node string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(node))
	return h.Sum64()
}

// walk returns the first block of s at or after index from (wrapping)
// that is neither wholly excluded nor skipped; excluded prefixes are
// jumped over by arithmetic.
func (n Network) walk(s Subnet, from uint64, skip func(netip.Prefix) bool) (netip.Prefix, bool, error) {
	blocks, err := ipam.Split(s.Prefix, s.BlockBits)
	if err != nil {
		return netip.Prefix{}, false, fmt.Errorf("network %q subnet %s: %v: %w", n.Name, s.Prefix, err, ErrConfig)
	}
	total := blocks.Len()
	i := from % total
	for visited := uint64(0); visited < total; {
		b := blocks.At(i)
		step := uint64(1)
		if e, ok := n.excludedBy(b); ok {
			last, _ := blocks.Index(ipam.LastAddr(e))
			if e.Bits() <= s.Prefix.Bits() {
				return netip.Prefix{}, false, nil
			}
			if last >= i {
				step = last - i + 1
			}
		} else if !skip(b) {
			return b, true, nil
		}
		visited += step
		i = (i + step) % total
	}
	return netip.Prefix{}, false, nil
}

func (n Network) excludedBy(b netip.Prefix) (netip.Prefix, bool) {
	for _, e := range n.Exclude {
		if ipam.Covers(e, b) {
			return e, true
		}
	}
	return netip.Prefix{}, false
}
