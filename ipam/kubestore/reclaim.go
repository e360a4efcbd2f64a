package kubestore

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ReclaimResult says what a reclaim found and did.
type ReclaimResult struct {
	// Freed are the blocks whose objects were deleted (or, with DryRun,
	// would be).
	Freed []Block
	// Live are the blocks not marked empty (refused without force).
	Live []Block
	// Changed are blocks that changed while reclaiming, left alone.
	Changed []Block
	// Records are the IPAMSticky objects naming the node that were
	// deleted (or, with DryRun, would be): all with force, else the
	// holds whose time is up. LiveRecords name it as where a workload
	// runs (refused without force, as Live). See sticky_reclaim.go.
	Records, LiveRecords []string
}

// Reclaim frees the blocks node holds on network (every network when
// empty), so other nodes can claim them. When any of them is not marked
// empty and force is false, it frees nothing and returns ErrLiveBlocks
// naming them. Each delete carries the object's resourceVersion, so a
// block the node touched meanwhile is left alone (Changed). A forced
// reclaim keeps nothing reserved: use it only once the node is gone.
func (c *Client) Reclaim(ctx context.Context, network, node string, force, dryRun bool) (ReclaimResult, error) {
	var res ReclaimResult
	if node == "" {
		return res, fmt.Errorf("reclaim: node name is empty: %w", ErrConfig)
	}
	ctx, cancel := c.bound(ctx)
	defer cancel()
	blocks, err := c.list(ctx, network, node)
	if err != nil {
		return res, err
	}
	for _, b := range blocks {
		if !b.Empty() {
			res.Live = append(res.Live, b)
		}
	}
	recs, err := c.nodeStickies(ctx, network, map[string]bool{node: true})
	if err != nil {
		return res, err
	}
	res.LiveRecords = liveStickies(recs)
	if (len(res.Live) > 0 || len(res.LiveRecords) > 0) && !force {
		var names []string
		for _, b := range res.Live {
			names = append(names, fmt.Sprintf("%s (%s, %d in use)", b.CIDR, b.Network, b.InUse))
		}
		for _, r := range res.LiveRecords {
			names = append(names, "IPAMSticky "+r)
		}
		return res, fmt.Errorf("node %q: blocks %s are not marked empty; reclaim with force only once the node is gone: %w",
			node, strings.Join(names, ", "), ErrLiveBlocks)
	}
	if err := c.freeStickies(ctx, recs, force, dryRun, c.now(), &res); err != nil {
		return res, err
	}
	return res, c.deleteAll(ctx, blocks, dryRun, &res)
}

func (c *Client) deleteAll(ctx context.Context, blocks []Block, dryRun bool, res *ReclaimResult) error {
	for _, b := range blocks {
		if dryRun {
			res.Freed = append(res.Freed, b)
			continue
		}
		ok, err := c.deleteIfUnchanged(ctx, b)
		if err != nil {
			return err
		}
		if ok {
			res.Freed = append(res.Freed, b)
		} else {
			res.Changed = append(res.Changed, b)
		}
	}
	return nil
}

// ReclaimGone frees the blocks of every node whose Node object is gone:
// blocks whose claimant recorded its Node UID (spec.nodeUID) while no
// Node of that name and UID exists any more (deleted, or deleted and
// registered again, which is another machine's life). Blocks claimed by
// hosts without a Node object are never touched here.
func (c *Client) ReclaimGone(ctx context.Context, network string, dryRun bool) (ReclaimResult, error) {
	var res ReclaimResult
	ctx, cancel := c.bound(ctx)
	defer cancel()
	blocks, err := c.list(ctx, network, "")
	if err != nil {
		return res, err
	}
	nodes, err := c.dyn.Resource(nodesGVR).List(ctx, metav1.ListOptions{})
	if err = c.wrap("list Nodes", err); err != nil {
		return res, err
	}
	alive := map[string]bool{}
	for _, n := range nodes.Items {
		alive[n.GetName()+"/"+string(n.GetUID())] = true
	}
	var gone []Block
	for _, b := range blocks {
		if b.NodeUID != "" && !alive[b.Node+"/"+b.NodeUID] {
			gone = append(gone, b)
		}
	}
	if err := c.reclaimGoneStickies(ctx, network, gone, nodes.Items, dryRun, &res); err != nil {
		return res, err
	}
	return res, c.deleteAll(ctx, gone, dryRun, &res)
}

// Release gives back block b of network held by node, if its object is
// unchanged since read; for tests and medianetctl.
func (c *Client) Release(ctx context.Context, network, node string, p netip.Prefix) error {
	ctx, cancel := c.bound(ctx)
	defer cancel()
	b, ok, err := c.get(ctx, network, p)
	if err != nil || !ok {
		return err
	}
	if b.Node != node {
		return fmt.Errorf("release block %s on network %q: claimed by node %q, not %q: %w", p, network, b.Node, node, ErrNotOwner)
	}
	_, err = c.deleteIfUnchanged(ctx, b)
	return err
}
