package etcdstore

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/medianet/medianet/ipam"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// mixedTries bounds the read-pick-commit rounds of claimMixed.
const mixedTries = 8

// Mixed block sizes. After a blockSize change, a block of the new size
// can overlap a claimed block of the old size under another key, so the
// per-key compare of the uniform path no longer proves that a claim is
// exclusive. The first node to claim with another size marks the subnet
// mixed in the config record; from then on every claim in the subnet reads
// all claims of the network at revision R, picks a block overlapping none,
// and commits only if the record is unchanged and no block key of the
// network was created or modified after R. Slower under contention (any
// claim in the network makes the others retry), but exclusive, and only
// while sizes are mixed.

// claimMixed claims want (when valid) or the next free block of s for
// node, overlapping no claim of any size and nothing in held.
func (c *Client) claimMixed(ctx context.Context, n Network, node string, s Subnet, held ipam.Held, want netip.Prefix) (netip.Prefix, error) {
	op := fmt.Sprintf("claim a block of %s for node %q on network %q (mixed block sizes)", s.Prefix, node, n.Name)
	for try := 0; try < mixedTries; try++ {
		recVal, err := c.markMixed(ctx, n, s.Prefix)
		if err != nil {
			return netip.Prefix{}, err
		}
		claims, rev, err := c.claimsAt(ctx, n.Name)
		if err != nil {
			return netip.Prefix{}, err
		}
		b, adopt, err := pickMixed(n, node, s, held, want, claims)
		if err != nil {
			return b, err
		}
		if adopt {
			if ok, err := c.adoptMixed(ctx, n.Name, b, claims); err != nil || ok {
				return b, err
			}
			continue
		}
		ok, err := c.commitMixed(ctx, n.Name, node, b, recVal, rev)
		if err != nil || ok {
			return b, err
		}
	}
	return netip.Prefix{}, c.wrap(op, fmt.Errorf("other claims kept changing the network %d times", mixedTries))
}

// commitMixed writes node's claim of b if the config record still reads
// recVal and no claim of the network was written since revision rev (the
// read b was picked from). It reports false when either changed.
func (c *Client) commitMixed(ctx context.Context, net, node string, b netip.Prefix, recVal string, rev int64) (bool, error) {
	val, _ := json.Marshal(Claim{Node: node, Claimed: time.Now().UTC()})
	resp, err := c.txn(ctx, fmt.Sprintf("claim block %s for node %q on network %q (mixed block sizes)", b, node, net),
		[]clientv3.Cmp{
			clientv3.Compare(clientv3.Value(c.configKey(net)), "=", recVal),
			clientv3.Compare(clientv3.ModRevision(c.blocksPrefix(net)), "<", rev+1).WithPrefix(),
		}, []clientv3.Op{clientv3.OpPut(c.blockKey(net, b), string(val))}, nil)
	if err != nil {
		return false, err
	}
	return resp.Succeeded, nil
}

// pickMixed chooses the block to claim among claims (all of the network,
// read at one revision). adopt is true when the block is already node's
// claim (nothing to write).
func pickMixed(n Network, node string, s Subnet, held ipam.Held, want netip.Prefix, claims []BlockClaim) (netip.Prefix, bool, error) {
	var in []BlockClaim
	for _, bc := range claims {
		if bc.Block.Overlaps(s.Prefix) {
			in = append(in, bc)
		}
	}
	overlapping := func(p netip.Prefix) (BlockClaim, bool) {
		for _, bc := range in {
			if bc.Block.Overlaps(p) {
				return bc, true
			}
		}
		return BlockClaim{}, false
	}
	if want.IsValid() {
		bc, ok := overlapping(want)
		switch {
		case !ok:
			return want, false, nil
		case bc.Block == want && bc.Claim.Node == node:
			return want, true, nil
		}
		return netip.Prefix{}, false, fmt.Errorf("network %q block %s overlaps block %s claimed by node %q: %w",
			n.Name, want, bc.Block, bc.Claim.Node, ErrNotOwner)
	}
	for _, bc := range in {
		if bc.Claim.Node == node && !held.Overlaps(bc.Block) {
			return bc.Block, true, nil // left by a crash: adopt it
		}
	}
	b, ok := n.walk(s, s.seed(node), func(p netip.Prefix) bool {
		_, taken := overlapping(p)
		return taken || held.Overlaps(p)
	})
	if !ok {
		return netip.Prefix{}, false, fmt.Errorf("network %q subnet %s: no /%d block is free of claims of any size: %w",
			n.Name, s.Prefix, s.BlockBits, ErrExhausted)
	}
	return b, false, nil
}

// markMixed makes sure the config record marks subnet mixed and returns
// the record's value. A record with other subnets is ErrConfigMismatch.
func (c *Client) markMixed(ctx context.Context, n Network, subnet netip.Prefix) (string, error) {
	key := c.configKey(n.Name)
	for attempt := 0; attempt < 3; attempt++ {
		resp, err := c.get(ctx, fmt.Sprintf("read config of network %q", n.Name), key)
		if err != nil {
			return "", err
		}
		if len(resp.Kvs) == 0 {
			if err := c.ensureConfig(ctx, n); err != nil {
				return "", err
			}
			continue
		}
		got := string(resp.Kvs[0].Value)
		r, err := parseRecord(got)
		if err != nil || !r.sameSubnets(n) {
			return "", c.mismatch(n, got)
		}
		if rs, _ := r.subnet(subnet); rs.Mixed {
			return got, nil
		}
		mixed := r.withMixed(subnet).json()
		tr, err := c.txn(ctx, fmt.Sprintf("mark subnet %s of network %q as having mixed block sizes", subnet, n.Name),
			[]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", resp.Kvs[0].ModRevision)},
			[]clientv3.Op{clientv3.OpPut(key, mixed)}, nil)
		if err != nil {
			return "", err
		}
		if tr.Succeeded {
			return mixed, nil
		}
	}
	return "", c.wrap("mark network "+n.Name+" mixed", fmt.Errorf("config record kept changing"))
}

// claimsAt reads every claim of network net with one prefix Get and
// returns them with the revision they were read at.
func (c *Client) claimsAt(ctx context.Context, net string) ([]BlockClaim, int64, error) {
	pfx := c.blocksPrefix(net)
	resp, err := c.get(ctx, fmt.Sprintf("list claims of network %q", net), pfx, clientv3.WithPrefix())
	if err != nil {
		return nil, 0, err
	}
	var out []BlockClaim
	for _, kv := range resp.Kvs {
		b, err := parseBlockName(strings.TrimPrefix(string(kv.Key), pfx))
		if err != nil {
			continue
		}
		bc := BlockClaim{Network: net, Block: b, ModRevision: kv.ModRevision}
		if json.Unmarshal(kv.Value, &bc.Claim) != nil {
			bc.Claim.Node = "(unreadable claim)"
		}
		out = append(out, bc)
	}
	return out, resp.Header.Revision, nil
}

// adoptMixed takes back node's own claim of b found in claims, unmarking it
// empty (see readopt) when it was marked. It reports false when the claim
// changed meanwhile.
func (c *Client) adoptMixed(ctx context.Context, net string, b netip.Prefix, claims []BlockClaim) (bool, error) {
	for _, bc := range claims {
		if bc.Block == b {
			if !bc.Claim.Empty {
				return true, nil
			}
			return c.readopt(ctx, c.blockKey(net, b), bc.ModRevision, bc.Claim)
		}
	}
	return false, nil
}
