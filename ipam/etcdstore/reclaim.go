package etcdstore

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
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
	// Now judges sticky holds' expiry (zero: the client's clock).
	Now time.Time
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
	// Records are the sticky records naming the node that were deleted
	// (or, with DryRun, would be): every one with Force, else the holds
	// whose time is up. LiveRecords are those naming the node as where a
	// workload runs (refused without Force, as Live).
	Records, LiveRecords []string
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
	records, err := c.nodeRecords(ctx, opts.Network, node)
	if err != nil {
		return res, err
	}
	for _, r := range records {
		if !r.rec.Hold {
			res.LiveRecords = append(res.LiveRecords, r.key)
		}
	}
	if (len(res.Live) > 0 || len(res.LiveRecords) > 0) && !opts.Force {
		names := make([]string, 0, len(res.Live)+len(res.LiveRecords))
		for _, bc := range res.Live {
			names = append(names, bc.Network+":"+bc.Block.String())
		}
		for _, k := range res.LiveRecords {
			names = append(names, "sticky record "+strings.TrimPrefix(k, c.networksPrefix()))
		}
		return res, fmt.Errorf("reclaim node %q: blocks %s are not marked empty (the node may still have containers using them); "+
			"make sure the node is gone, then force: %w", node, strings.Join(names, ", "), ErrLiveBlocks)
	}
	if err := c.freeRecords(ctx, records, opts, &res); err != nil {
		return res, fmt.Errorf("reclaim node %q: %w", node, err)
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

// nodeRecord is a sticky record read by Reclaim.
type nodeRecord struct {
	key string
	stickyKV
}

// nodeRecords lists the sticky records naming node, in network (every
// network when empty).
func (c *Client) nodeRecords(ctx context.Context, network, node string) ([]nodeRecord, error) {
	ctx, cancel := c.bound(ctx)
	defer cancel()
	resp, err := c.get(ctx, "list sticky records", c.networksPrefix(), clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	var out []nodeRecord
	for _, kv := range resp.Kvs {
		rest := strings.TrimPrefix(string(kv.Key), c.networksPrefix())
		net, _, ok := strings.Cut(rest, "/sticky/")
		if !ok || (network != "" && net != network) {
			continue
		}
		var rec stickyRecord
		if json.Unmarshal(kv.Value, &rec) != nil || rec.Node != node {
			continue
		}
		out = append(out, nodeRecord{key: string(kv.Key), stickyKV: stickyKV{rec: rec, rev: kv.ModRevision}})
	}
	return out, nil
}

// freeRecords deletes the reclaimed node's sticky records that Reclaim
// frees: all with Force, else the holds whose time is up (a hold still
// running stays: the workload may start on another node and take it).
// Each delete compares the record's revision.
func (c *Client) freeRecords(ctx context.Context, records []nodeRecord, opts ReclaimOptions, res *ReclaimResult) error {
	now := opts.Now
	if now.IsZero() {
		now = c.now()
	}
	for _, r := range records {
		if !opts.Force && (!r.rec.Hold || now.Before(r.rec.Until)) {
			continue
		}
		if !opts.DryRun {
			tr, err := c.txn(ctx, "delete sticky record "+r.key, []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(r.key), "=", r.rev)},
				[]clientv3.Op{clientv3.OpDelete(r.key)}, nil)
			if err != nil {
				return err
			}
			if !tr.Succeeded {
				continue
			}
		}
		res.Records = append(res.Records, r.key)
	}
	return nil
}
