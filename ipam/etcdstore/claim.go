package etcdstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/medianet/medianet/ipam"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// probes is how many candidates the picker tries one by one, starting at
// the node's seed, before it reads the claimed set with one prefix Get.
const probes = 8

// relists bounds how often the picker re-reads the claimed set after
// losing a race for the block it picked.
const relists = 3

// outcome of one claim attempt.
type outcome int

const (
	claimed outcome = iota // this call wrote the claim
	adopted                // the block was already this node's
	taken                  // another node holds it
)

// ClaimNext claims a block of subnet for node and returns it. Blocks
// overlapping one in held (the node's own, of any size) are skipped. A
// block already claimed by node in etcd but not held (left by a crash
// between the claim and the local record) is returned without a write.
// The whole call is bounded by Config.RequestTimeout.
func (c *Client) ClaimNext(ctx context.Context, n Network, node string, subnet netip.Prefix, held ipam.Held) (netip.Prefix, error) {
	s, err := c.checkArgs(n, node, subnet)
	if err != nil {
		return netip.Prefix{}, err
	}
	ctx, cancel := c.bound(ctx)
	defer cancel()
	seed := s.seed(node)
	seen := map[netip.Prefix]bool{} // claimed by others, as far as we know
	skip := func(b netip.Prefix) bool { return held.Overlaps(b) || seen[b] }
	for try := 0; try < probes+relists; try++ {
		if try >= probes {
			if err := c.claimedSet(ctx, n, s, seen); err != nil {
				return netip.Prefix{}, err
			}
		}
		b, ok := n.walk(s, seed, skip)
		if !ok {
			return netip.Prefix{}, fmt.Errorf("network %q subnet %s: all %d blocks of /%d are claimed or held: %w",
				n.Name, subnet, s.count(), s.BlockBits, ErrExhausted)
		}
		out, err := c.tryClaim(ctx, n, node, b)
		if errors.Is(err, errMixed) {
			return c.claimMixed(ctx, n, node, s, held, netip.Prefix{})
		}
		if err != nil {
			return netip.Prefix{}, err
		}
		if out != taken {
			return b, nil
		}
		seen[b] = true
	}
	return netip.Prefix{}, c.wrap(fmt.Sprintf("claim a block of %s for node %q on network %q", subnet, node, n.Name),
		fmt.Errorf("lost the race for a free block %d times", relists))
}

// ClaimBlock claims the given block of one of n's subnets for node, for a
// requested address. It succeeds when the block is free or already node's;
// when another node holds it (or a block overlapping it) the error wraps
// ErrNotOwner and names that node. A block of another length than the
// subnet's block size (after a blockSize change) is claimed with the
// overlap check of mixed block sizes.
func (c *Client) ClaimBlock(ctx context.Context, n Network, node string, block netip.Prefix) error {
	var sub netip.Prefix
	for _, s := range n.Subnets {
		if s.Prefix.Contains(block.Addr()) {
			sub = s.Prefix
		}
	}
	s, err := c.checkArgs(n, node, sub)
	if err != nil {
		return fmt.Errorf("block %s: %w", block, err)
	}
	if block.Masked() != block || block.Bits() < s.Prefix.Bits() || block.Addr().BitLen()-block.Bits() > MaxBlockHostBits {
		return fmt.Errorf("block %s: not a block of %s of at most %d addresses: %w", block, s.Prefix, 1<<MaxBlockHostBits, ErrConfig)
	}
	ctx, cancel := c.bound(ctx)
	defer cancel()
	if block.Bits() != s.BlockBits {
		_, err := c.claimMixed(ctx, n, node, s, ipam.Held{}, block)
		return err
	}
	out, err := c.tryClaim(ctx, n, node, block)
	if errors.Is(err, errMixed) {
		_, err = c.claimMixed(ctx, n, node, s, ipam.Held{}, block)
		return err
	}
	if err != nil {
		return err
	}
	if out == taken {
		owner := "claimed by another node"
		if cl, ok, err := c.getClaim(ctx, n.Name, block); err == nil && ok {
			owner = fmt.Sprintf("claimed by node %q", cl.Claim.Node)
			if cl.Claim.IsTombstone() {
				owner = fmt.Sprintf("reclaimed by force from node %q, whose addresses in it stay reserved; it is handed out only when no other block is left", cl.Claim.ReclaimedFrom)
			}
		}
		return fmt.Errorf("network %q block %s is %s: %w", n.Name, block, owner, ErrNotOwner)
	}
	return nil
}

func (c *Client) checkArgs(n Network, node string, subnet netip.Prefix) (Subnet, error) {
	if err := n.validate(); err != nil {
		return Subnet{}, err
	}
	if node == "" {
		return Subnet{}, fmt.Errorf("network %q: node name is empty: %w", n.Name, ErrConfig)
	}
	s, ok := n.subnet(subnet)
	if !ok {
		return Subnet{}, fmt.Errorf("network %q: %s is not one of its subnets: %w", n.Name, subnet, ErrConfig)
	}
	return s, nil
}

// tryClaim writes the claim of b for node if b is unclaimed and the
// network's recorded config equals n's, in one transaction. A missing
// config is recorded first (once per network).
func (c *Client) tryClaim(ctx context.Context, n Network, node string, b netip.Prefix) (outcome, error) {
	rec, cfgKey, bkey := n.recordJSON(), c.configKey(n.Name), c.blockKey(n.Name, b)
	val, _ := json.Marshal(Claim{Node: node, Claimed: time.Now().UTC()})
	for attempt := 0; attempt < 3; attempt++ {
		resp, err := c.txn(ctx, fmt.Sprintf("claim block %s for node %q on network %q", b, node, n.Name),
			[]clientv3.Cmp{
				clientv3.Compare(clientv3.Value(cfgKey), "=", rec),
				clientv3.Compare(clientv3.CreateRevision(bkey), "=", 0),
			},
			[]clientv3.Op{clientv3.OpPut(bkey, string(val))},
			[]clientv3.Op{clientv3.OpGet(cfgKey), clientv3.OpGet(bkey)})
		if err != nil {
			return taken, err
		}
		if resp.Succeeded {
			return claimed, nil
		}
		cfgKVs := resp.Responses[0].GetResponseRange().Kvs
		if len(cfgKVs) == 0 {
			if err := c.ensureConfig(ctx, n); err != nil {
				return taken, err
			}
			continue
		}
		if got := string(cfgKVs[0].Value); got != rec {
			return taken, c.recordDiffers(n, got)
		}
		bKVs := resp.Responses[1].GetResponseRange().Kvs
		var cl Claim
		if len(bKVs) == 0 || json.Unmarshal(bKVs[0].Value, &cl) != nil || cl.Node != node {
			return taken, nil
		}
		if !cl.Empty {
			// Already this node's and in use: another process of the node
			// (kubelet runs ADDs in parallel) claimed it a moment ago.
			return adopted, nil
		}
		ok, err := c.readopt(ctx, bkey, bKVs[0].ModRevision, cl)
		if err != nil || ok {
			return adopted, err
		}
	}
	return taken, c.wrap("claim block "+b.String(), errors.New("config or claim kept changing"))
}

// readopt rewrites this node's own claim, unmarking it empty, so that a
// give-back of the same block racing with this adoption (SyncIdle in
// another process of the node) fails its ModRevision compare instead of
// deleting a claim the node uses again. It reports false when the claim
// changed meanwhile.
func (c *Client) readopt(ctx context.Context, key string, rev int64, cl Claim) (bool, error) {
	cl.Empty, cl.EmptySince = false, time.Time{}
	val, _ := json.Marshal(cl)
	resp, err := c.txn(ctx, "re-adopt claim "+key,
		[]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", rev)},
		[]clientv3.Op{clientv3.OpPut(key, string(val))}, nil)
	if err != nil {
		return false, err
	}
	return resp.Succeeded, nil
}

// CheckConfig records n's config in etcd if the network has none yet, and
// returns an error wrapping ErrConfigMismatch when the recorded one
// differs. Claims check it themselves; this is for start-up checks.
func (c *Client) CheckConfig(ctx context.Context, n Network) error {
	if err := n.validate(); err != nil {
		return err
	}
	ctx, cancel := c.bound(ctx)
	defer cancel()
	return c.ensureConfig(ctx, n)
}

func (c *Client) ensureConfig(ctx context.Context, n Network) error {
	rec, key := n.recordJSON(), c.configKey(n.Name)
	resp, err := c.txn(ctx, fmt.Sprintf("record config of network %q", n.Name),
		[]clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(key), "=", 0)},
		[]clientv3.Op{clientv3.OpPut(key, rec)},
		[]clientv3.Op{clientv3.OpGet(key)})
	if err != nil {
		return err
	}
	if resp.Succeeded {
		return nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) > 0 && string(kvs[0].Value) != rec {
		if err := c.recordDiffers(n, string(kvs[0].Value)); !errors.Is(err, errMixed) {
			return err
		}
	}
	return nil
}

// errMixed: the recorded config has this node's subnets but other block
// sizes (or mixed ones): claims must take the mixed-size path.
var errMixed = errors.New("block sizes differ: mixed claims")

// recordDiffers explains a recorded config that differs from n's: the same
// subnets with other block sizes is errMixed (a blockSize change, which
// claimMixed handles safely); other subnets are ErrConfigMismatch.
func (c *Client) recordDiffers(n Network, got string) error {
	r, err := parseRecord(got)
	if err == nil && r.sameSubnets(n) {
		return errMixed
	}
	return c.mismatch(n, got)
}

func (c *Client) mismatch(n Network, got string) error {
	return fmt.Errorf("network %q: this node's config has %s but etcd (%s, key %s) records %s; "+
		"fix this node's subnet, or delete that key if no node uses the network any more: %w",
		n.Name, describeRecord(n.recordJSON()), strings.Join(c.cfg.Endpoints, ","), c.configKey(n.Name),
		describeRecord(got), ErrConfigMismatch)
}

// claimedSet adds every block of s claimed in etcd to seen, with one
// keys-only prefix Get.
func (c *Client) claimedSet(ctx context.Context, n Network, s Subnet, seen map[netip.Prefix]bool) error {
	pfx := c.blocksPrefix(n.Name)
	resp, err := c.get(ctx, fmt.Sprintf("list blocks of network %q", n.Name), pfx, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return err
	}
	for _, kv := range resp.Kvs {
		b, err := parseBlockName(strings.TrimPrefix(string(kv.Key), pfx))
		if err == nil && s.Prefix.Contains(b.Addr()) {
			seen[b] = true
		}
	}
	return nil
}

// walk returns the first block of s at or after index from (wrapping)
// that is neither wholly excluded nor skipped. Excluded prefixes are
// jumped over by arithmetic.
func (n Network) walk(s Subnet, from uint64, skip func(netip.Prefix) bool) (netip.Prefix, bool) {
	total := s.count()
	i := from % total
	for visited := uint64(0); visited < total; {
		b := s.at(i)
		step := uint64(1)
		if e, ok := n.excludedBy(b); ok {
			if e.Bits() <= s.Prefix.Bits() {
				return netip.Prefix{}, false // the whole subnet is excluded
			}
			start := s.index(e.Masked().Addr())
			step = start + 1<<(s.BlockBits-e.Bits()) - i
		} else if !skip(b) {
			return b, true
		}
		visited += step
		i = (i + step) % total
	}
	return netip.Prefix{}, false
}
