package etcdstore

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math/big"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
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
	Node    string    `json:"node"`
	Claimed time.Time `json:"claimed"`
	// Empty is set by MarkEmpty when the node has no allocation left in
	// the block; EmptySince says since when.
	Empty      bool      `json:"empty,omitempty"`
	EmptySince time.Time `json:"emptySince,omitzero"`
}

// BlockClaim is one claim as read from etcd.
type BlockClaim struct {
	Network     string
	Block       netip.Prefix
	Claim       Claim
	ModRevision int64
}

// Block math: block i of s is s.Prefix.Addr() + i<<(bitlen-BlockBits).

func (s Subnet) count() uint64 { return 1 << (s.BlockBits - s.Prefix.Bits()) }

func (s Subnet) hostBits() uint { return uint(s.Prefix.Addr().BitLen() - s.BlockBits) }

func addrInt(a netip.Addr) *big.Int { return new(big.Int).SetBytes(a.AsSlice()) }

func (s Subnet) at(i uint64) netip.Prefix {
	v := new(big.Int).Lsh(new(big.Int).SetUint64(i), s.hostBits())
	v.Add(v, addrInt(s.Prefix.Addr()))
	buf := make([]byte, s.Prefix.Addr().BitLen()/8)
	v.FillBytes(buf)
	a, _ := netip.AddrFromSlice(buf)
	return netip.PrefixFrom(a, s.BlockBits)
}

// index returns the index of the block holding a; a must be in s.Prefix.
func (s Subnet) index(a netip.Addr) uint64 {
	v := new(big.Int).Sub(addrInt(a), addrInt(s.Prefix.Addr()))
	return v.Rsh(v, s.hostBits()).Uint64()
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
