package etcdstore

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// ReclaimOptions tune Reclaim.
type ReclaimOptions struct {
	// Network limits reclaim to one network (empty: every network).
	Network string
	// Force frees blocks not marked empty too, leaving a tombstone that
	// keeps the node's last published used addresses reserved (see
	// foreign.go). Use it only once the node is known to be gone (see
	// docs/ipam-etcd.md: the safe procedure).
	Force bool
	// DryRun reports what would be freed without writing.
	DryRun bool
}

// ReclaimResult says what Reclaim found and did.
type ReclaimResult struct {
	// Freed are the claims deleted or, for blocks not marked empty,
	// turned into tombstones (or, with DryRun, that would be).
	Freed []BlockClaim
	// Live are the claims not marked empty (refused without Force).
	Live []BlockClaim
	// Changed are claims that changed while reclaiming and were left alone.
	Changed []BlockClaim
}

// Reclaim frees the blocks node holds, so other nodes can claim them. When
// any of them is not marked empty (MarkUsage) and opts.Force is false, it
// frees nothing and returns an error wrapping ErrLiveBlocks that names
// those blocks. Each delete compares the claim's ModRevision, so a block
// the node touched meanwhile is left alone (listed in Changed). Each etcd
// call is bounded by Config.RequestTimeout.
func (c *Client) Reclaim(ctx context.Context, node string, opts ReclaimOptions) (ReclaimResult, error) {
	var res ReclaimResult
	if node == "" {
		return res, fmt.Errorf("reclaim: node name is empty: %w", ErrConfig)
	}
	claims, err := c.Claims(ctx, opts.Network, node)
	if err != nil {
		return res, err
	}
	for _, bc := range claims {
		if !bc.Claim.Empty {
			res.Live = append(res.Live, bc)
		}
	}
	if len(res.Live) > 0 && !opts.Force {
		names := make([]string, len(res.Live))
		for i, bc := range res.Live {
			names[i] = bc.Network + ":" + bc.Block.String()
		}
		return res, fmt.Errorf("reclaim node %q: blocks %s are not marked empty (the node may still have containers using them); "+
			"make sure the node is gone, then force: %w", node, strings.Join(names, ", "), ErrLiveBlocks)
	}
	for _, bc := range claims {
		if opts.DryRun {
			res.Freed = append(res.Freed, bc)
			continue
		}
		ok, err := c.freeClaim(ctx, bc)
		if err != nil {
			return res, fmt.Errorf("reclaim node %q: %w", node, err)
		}
		if ok {
			res.Freed = append(res.Freed, bc)
		} else {
			res.Changed = append(res.Changed, bc)
		}
	}
	return res, nil
}

// freeClaim deletes an empty-marked claim; any other becomes a tombstone
// keeping its used bitmap, so that the next owner never hands out the
// addresses the node may still use. It reports false when the claim
// changed meanwhile.
func (c *Client) freeClaim(ctx context.Context, bc BlockClaim) (bool, error) {
	if bc.Claim.Empty {
		return c.ReleaseClaim(ctx, bc)
	}
	ctx, cancel := c.bound(ctx)
	defer cancel()
	tomb := bc
	tomb.Claim = Claim{Claimed: time.Now().UTC(), Used: bc.Claim.Used, ReclaimedFrom: bc.Claim.Node}
	return c.putIfUnchanged(ctx, tomb, fmt.Sprintf("reclaim block %s of node %q on network %q", bc.Block, bc.Claim.Node, bc.Network))
}
