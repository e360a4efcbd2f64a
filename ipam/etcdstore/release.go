package etcdstore

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// getClaim reads the claim of block b of network net.
func (c *Client) getClaim(ctx context.Context, net string, b netip.Prefix) (BlockClaim, bool, error) {
	resp, err := c.get(ctx, fmt.Sprintf("read claim of block %s on network %q", b, net), c.blockKey(net, b))
	if err != nil || len(resp.Kvs) == 0 {
		return BlockClaim{}, false, err
	}
	bc, err := decodeClaim(net, b, resp.Kvs[0])
	return bc, err == nil, err
}

// Claims lists the block claims under the prefix, for network net (all
// networks when net is empty) and node (all nodes when node is empty),
// sorted by network and block. One prefix Get.
func (c *Client) Claims(ctx context.Context, net, node string) ([]BlockClaim, error) {
	ctx, cancel := c.bound(ctx)
	defer cancel()
	pfx := c.networksPrefix()
	if net != "" {
		pfx = c.blocksPrefix(net)
	}
	resp, err := c.get(ctx, "list block claims", pfx, clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	var out []BlockClaim
	for _, kv := range resp.Kvs {
		rest := strings.TrimPrefix(string(kv.Key), c.networksPrefix())
		netName, name, ok := strings.Cut(rest, "/blocks/")
		if !ok {
			continue // a config key
		}
		b, err := parseBlockName(name)
		if err != nil {
			continue // not ours; leave it alone
		}
		bc := BlockClaim{Network: netName, Block: b, ModRevision: kv.ModRevision}
		if json.Unmarshal(kv.Value, &bc.Claim) != nil || (node != "" && bc.Claim.Node != node) {
			continue
		}
		out = append(out, bc)
	}
	slices.SortFunc(out, func(a, b BlockClaim) int {
		if a.Network != b.Network {
			return strings.Compare(a.Network, b.Network)
		}
		return a.Block.Addr().Compare(b.Block.Addr())
	})
	return out, nil
}

// Release gives block b of network net back, if node still owns it: a
// transaction comparing the claim's ModRevision, so a claim that changed
// hands in between is left alone. Releasing a block nobody claims is not an
// error. The caller must have stopped allocating from b first.
func (c *Client) Release(ctx context.Context, net, node string, b netip.Prefix) error {
	ctx, cancel := c.bound(ctx)
	defer cancel()
	for attempt := 0; attempt < 3; attempt++ {
		bc, ok, err := c.getClaim(ctx, net, b)
		if err != nil || !ok {
			return err
		}
		if bc.Claim.Node != node {
			return fmt.Errorf("release block %s on network %q: claimed by node %q, not %q: %w", b, net, bc.Claim.Node, node, ErrNotOwner)
		}
		done, err := c.deleteIfUnchanged(ctx, bc)
		if err != nil || done {
			return err
		}
	}
	return c.wrap(fmt.Sprintf("release block %s on network %q", b, net), fmt.Errorf("claim kept changing"))
}

func (c *Client) deleteIfUnchanged(ctx context.Context, bc BlockClaim) (bool, error) {
	key := c.blockKey(bc.Network, bc.Block)
	resp, err := c.txn(ctx, fmt.Sprintf("delete claim of block %s on network %q", bc.Block, bc.Network),
		[]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", bc.ModRevision)},
		[]clientv3.Op{clientv3.OpDelete(key)}, nil)
	if err != nil {
		return false, err
	}
	return resp.Succeeded, nil
}

// IdleBlocks returns node's claims on network net marked empty for at
// least Config.IdleRelease at now. To give one back, the caller removes
// the block from its local store (only if it is still empty there), then
// calls ReleaseClaim with the returned BlockClaim.
func (c *Client) IdleBlocks(ctx context.Context, net, node string, now time.Time) ([]BlockClaim, error) {
	if c.cfg.IdleRelease < 0 {
		return nil, nil
	}
	all, err := c.Claims(ctx, net, node)
	if err != nil {
		return nil, err
	}
	var out []BlockClaim
	for _, bc := range all {
		if bc.Claim.Empty && now.Sub(bc.Claim.EmptySince) >= c.cfg.IdleRelease {
			out = append(out, bc)
		}
	}
	return out, nil
}

// ReleaseClaim deletes the claim bc if it is unchanged since it was read
// (same ModRevision). It reports whether it deleted it.
func (c *Client) ReleaseClaim(ctx context.Context, bc BlockClaim) (bool, error) {
	ctx, cancel := c.bound(ctx)
	defer cancel()
	return c.deleteIfUnchanged(ctx, bc)
}

// decodeClaim decodes one claim key-value of block b of network net.
func decodeClaim(net string, b netip.Prefix, kv *mvccpb.KeyValue) (BlockClaim, error) {
	bc := BlockClaim{Network: net, Block: b, ModRevision: kv.ModRevision}
	if err := json.Unmarshal(kv.Value, &bc.Claim); err != nil {
		return BlockClaim{}, fmt.Errorf("claim of block %s on network %q: %w", b, net, err)
	}
	return bc, nil
}
