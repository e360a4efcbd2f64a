package etcdstore

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/medianet/medianet/ipam"
)

// MaxBlockHostBits limits a block to 2^16 addresses, as the allocator does.
const MaxBlockHostBits = 16

// Subnet is one subnet of a network and the prefix length of its blocks.
type Subnet struct {
	Prefix    netip.Prefix
	BlockBits int
}

// Network is what the cluster must agree on for one network: its name and
// subnets with their block sizes. Exclude is this node's view of excluded
// prefixes: blocks wholly inside one are never claimed (it is not recorded
// in etcd, since a difference cannot cause an overlap).
type Network struct {
	Name    string
	Subnets []Subnet
	Exclude []netip.Prefix
}

// record is the JSON value of <net>/config, canonical: subnets sorted.
type record struct {
	Subnets []recordSubnet `json:"subnets"`
}

type recordSubnet struct {
	Subnet    string `json:"subnet"`
	BlockBits int    `json:"blockBits"`
	// Mixed is set once a node claimed a block of another size in this
	// subnet (a blockSize change): from then on every claim in the subnet
	// checks for overlap with claims of any size (see claimMixed).
	Mixed bool `json:"mixed,omitempty"`
}

func parseRecord(v string) (record, error) {
	var r record
	if err := json.Unmarshal([]byte(v), &r); err != nil {
		return r, fmt.Errorf("config record %q: %w", v, err)
	}
	return r, nil
}

func (r record) subnet(p netip.Prefix) (recordSubnet, bool) {
	for _, s := range r.Subnets {
		if s.Subnet == p.String() {
			return s, true
		}
	}
	return recordSubnet{}, false
}

func (r record) json() string {
	b, _ := json.Marshal(r)
	return string(b)
}

// sameSubnets reports whether r records exactly n's subnets (block sizes
// aside).
func (r record) sameSubnets(n Network) bool {
	if len(r.Subnets) != len(n.Subnets) {
		return false
	}
	for _, s := range n.Subnets {
		if _, ok := r.subnet(s.Prefix); !ok {
			return false
		}
	}
	return true
}

// withMixed returns r with subnet p marked mixed.
func (r record) withMixed(p netip.Prefix) record {
	out := record{Subnets: slices.Clone(r.Subnets)}
	for i := range out.Subnets {
		if out.Subnets[i].Subnet == p.String() {
			out.Subnets[i].Mixed = true
		}
	}
	return out
}

func (n Network) validate() error {
	if n.Name == "" || strings.ContainsAny(n.Name, "/\x00") {
		return fmt.Errorf("network name %q: must be non-empty without '/': %w", n.Name, ErrConfig)
	}
	if len(n.Subnets) == 0 {
		return fmt.Errorf("network %q: no subnet: %w", n.Name, ErrConfig)
	}
	for _, s := range n.Subnets {
		p := s.Prefix
		if !p.IsValid() || p.Masked() != p {
			return fmt.Errorf("network %q subnet %s: want a valid prefix without host bits: %w", n.Name, p, ErrConfig)
		}
		host := p.Addr().BitLen() - s.BlockBits
		if s.BlockBits < p.Bits() || host < 0 || host > MaxBlockHostBits || s.BlockBits-p.Bits() > 63 {
			return fmt.Errorf("network %q subnet %s: blockSize /%d must be between /%d and /%d (at most %d addresses per block): %w",
				n.Name, p, s.BlockBits, max(p.Bits(), p.Addr().BitLen()-MaxBlockHostBits), p.Addr().BitLen(), 1<<MaxBlockHostBits, ErrConfig)
		}
	}
	return nil
}

// recordJSON returns the canonical config record.
func (n Network) recordJSON() string {
	var r record
	for _, s := range n.Subnets {
		r.Subnets = append(r.Subnets, recordSubnet{Subnet: s.Prefix.String(), BlockBits: s.BlockBits})
	}
	slices.SortFunc(r.Subnets, func(a, b recordSubnet) int { return strings.Compare(a.Subnet, b.Subnet) })
	b, _ := json.Marshal(r)
	return string(b)
}

// describeRecord renders a config record for messages.
func describeRecord(v string) string {
	var r record
	if err := json.Unmarshal([]byte(v), &r); err != nil || len(r.Subnets) == 0 {
		return fmt.Sprintf("%q", v)
	}
	parts := make([]string, len(r.Subnets))
	for i, s := range r.Subnets {
		parts[i] = fmt.Sprintf("subnet %s blockSize %d", s.Subnet, s.BlockBits)
		if s.Mixed {
			parts[i] += " (mixed block sizes)"
		}
	}
	return strings.Join(parts, ", ")
}

func (n Network) subnet(p netip.Prefix) (Subnet, bool) {
	for _, s := range n.Subnets {
		if s.Prefix == p {
			return s, true
		}
	}
	return Subnet{}, false
}

// Keys.
func (c *Client) networksPrefix() string         { return c.cfg.Prefix + "/networks/" }
func (c *Client) configKey(net string) string    { return c.networksPrefix() + net + "/config" }
func (c *Client) blocksPrefix(net string) string { return c.networksPrefix() + net + "/blocks/" }

// foreignKey is where node, having lost block b of net to a forced
// reclaim, says which of its addresses in b are still in use (Foreign).
func (c *Client) foreignKey(net string, b netip.Prefix, node string) string {
	return c.foreignPrefix(net, b) + node
}

func (c *Client) foreignPrefix(net string, b netip.Prefix) string {
	return c.networksPrefix() + net + "/foreign/" + blockName(b) + "/"
}
func (c *Client) blockKey(net string, b netip.Prefix) string {
	return c.blocksPrefix(net) + blockName(b)
}

// blockName is the key segment of a block: "10.0.0.64-26", "fd00::100-120".
func blockName(b netip.Prefix) string { return b.Addr().String() + "-" + strconv.Itoa(b.Bits()) }

func parseBlockName(s string) (netip.Prefix, error) {
	i := strings.LastIndexByte(s, '-')
	if i < 0 {
		return netip.Prefix{}, fmt.Errorf("block key %q: no '-'", s)
	}
	return netip.ParsePrefix(s[:i] + "/" + s[i+1:])
}

// Claim is the value of a block key.
type Claim struct {
	// Node holds the block; empty on a tombstone (see ReclaimedFrom).
	Node    string    `json:"node"`
	Claimed time.Time `json:"claimed"`
	// Empty is set by MarkUsage when the node has no allocation left in
	// the block; EmptySince says since when.
	Empty      bool      `json:"empty,omitempty"`
	EmptySince time.Time `json:"emptySince,omitzero"`
	// Used is the block's used-address bitmap (bit i: the block's i-th
	// address; little-endian 64-bit words) as of the node's last sync.
	Used []byte `json:"used,omitempty"`
	// ReclaimedFrom marks a tombstone: a forced reclaim took the block
	// from this node while it had addresses in use (Used). Another node
	// claims a tombstone only when no other block is left, and never hands
	// out the addresses in Used (see Foreign).
	ReclaimedFrom string `json:"reclaimedFrom,omitempty"`
}

// IsTombstone reports whether the claim marks a block reclaimed by force.
func (c Claim) IsTombstone() bool { return c.Node == "" && c.ReclaimedFrom != "" }

// usedBytes encodes a block's Used words as Claim.Used does (nil when no
// address is used).
func usedBytes(words []uint64) []byte {
	if !slices.ContainsFunc(words, func(w uint64) bool { return w != 0 }) {
		return nil
	}
	out := make([]byte, 0, 8*len(words))
	for _, w := range words {
		out = binary.LittleEndian.AppendUint64(out, w)
	}
	return out
}

// usedAddrs decodes Claim.Used of block b into addresses.
func usedAddrs(b netip.Prefix, used []byte) []netip.Addr {
	var out []netip.Addr
	n := ipam.Size(b)
	for i := uint64(0); i < uint64(len(used))*8 && i < n; i++ {
		if used[i/8]&(1<<(i%8)) != 0 {
			if a, ok := ipam.Offset(b.Addr(), i); ok {
				out = append(out, a)
			}
		}
	}
	return out
}

// BlockClaim is one claim as read from etcd.
type BlockClaim struct {
	Network     string
	Block       netip.Prefix
	Claim       Claim
	ModRevision int64
}

// Block math: block i of s is s.Prefix.Addr() + i<<(bitlen-BlockBits),
// computed by the ipam package's arithmetic.

func (s Subnet) blocks() ipam.Blocks { return ipam.Blocks{Parent: s.Prefix, Bits: s.BlockBits} }

func (s Subnet) count() uint64 { return s.blocks().Len() }

func (s Subnet) at(i uint64) netip.Prefix { return s.blocks().At(i) }

// index returns the index of the block holding a; a must be in s.Prefix.
func (s Subnet) index(a netip.Addr) uint64 {
	i, _ := s.blocks().Index(a)
	return i
}

// seed is the picker's start index for node: FNV-1a of the name.
func (s Subnet) seed(node string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(node))
	return h.Sum64() % s.count()
}

// excludedBy returns the Exclude prefix covering all of b.
func (n Network) excludedBy(b netip.Prefix) (netip.Prefix, bool) {
	for _, e := range n.Exclude {
		if e.Bits() <= b.Bits() && e.Contains(b.Addr()) {
			return e, true
		}
	}
	return netip.Prefix{}, false
}
