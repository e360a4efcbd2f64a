package boltstore

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/medianet/medianet/ipam"
	bolt "go.etcd.io/bbolt"
)

var (
	bMeta   = []byte("meta")
	kSchema = []byte("schema")
	bNets   = []byte("nets")
	bAlloc  = []byte("alloc")
	bAddr   = []byte("addr")
	bBlocks = []byte("blocks")
	bAvail  = []byte("avail")
	bCursor = []byte("cursor")
	bMetaN  = []byte("meta")
)

// tx implements ipam.Tx over one bbolt transaction. Every value it returns
// is decoded into fresh memory: nothing points into the mmap after the
// transaction ends.
type tx struct{ btx *bolt.Tx }

var _ ipam.Tx = (*tx)(nil)

// net returns the bucket of network's sub-bucket name, creating both in a
// write transaction; nil in a read transaction when missing.
func (t *tx) net(network, name []byte) (*bolt.Bucket, error) {
	nets := t.btx.Bucket(bNets)
	if nets == nil {
		return nil, fmt.Errorf("boltstore: bucket nets missing: %w", ipam.ErrCorrupt)
	}
	if !t.btx.Writable() {
		n := nets.Bucket(network)
		if n == nil {
			return nil, nil
		}
		return n.Bucket(name), nil
	}
	n, err := nets.CreateBucketIfNotExists(network)
	if err != nil {
		return nil, fmt.Errorf("boltstore: network %q: %w", network, err)
	}
	return n.CreateBucketIfNotExists(name)
}

func allocKey(k ipam.Key) []byte { return []byte(k.ContainerID + "\x00" + k.IfName) }

func addrKey(a netip.Addr) []byte {
	if a.Is4() {
		b := a.As4()
		return append([]byte{4}, b[:]...)
	}
	b := a.As16()
	return append([]byte{6}, b[:]...)
}

func decodeAddrKey(k []byte) (netip.Addr, bool) {
	switch {
	case len(k) >= 5 && k[0] == 4:
		return netip.AddrFrom4([4]byte(k[1:5])), true
	case len(k) >= 17 && k[0] == 6:
		return netip.AddrFrom16([16]byte(k[1:17])), true
	}
	return netip.Addr{}, false
}

func blockKey(p netip.Prefix) []byte { return append(addrKey(p.Addr()), byte(p.Bits())) }

func decodeBlockKey(k []byte) (netip.Prefix, bool) {
	a, ok := decodeAddrKey(k)
	if !ok || len(k) != len(addrKey(a))+1 {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(a, int(k[len(k)-1])), true
}

type allocValue struct {
	IPs       []netip.Addr `json:"ips"`
	Created   time.Time    `json:"created"`
	Workload  string       `json:"workload,omitempty"`
	HeldUntil time.Time    `json:"heldUntil,omitzero"`
	Resumed   time.Time    `json:"resumed,omitzero"`
	Published int64        `json:"published,omitempty"`
	Conflict  string       `json:"conflict,omitempty"`
	RetryAt   time.Time    `json:"retryAt,omitzero"`
}

func decodeAlloc(network string, k, v []byte) (ipam.Allocation, error) {
	cid, ifn, ok := strings.Cut(string(k), "\x00")
	var av allocValue
	if err := json.Unmarshal(v, &av); err != nil || !ok {
		return ipam.Allocation{}, fmt.Errorf("boltstore: network %q: allocation %q undecodable: %w", network, k, ipam.ErrCorrupt)
	}
	return ipam.Allocation{Key: ipam.Key{Network: network, ContainerID: cid, IfName: ifn},
		IPs: av.IPs, Created: av.Created, Workload: av.Workload, HeldUntil: av.HeldUntil, Resumed: av.Resumed, Published: av.Published,
		Conflict: av.Conflict, RetryAt: av.RetryAt}, nil
}

// Networks implements ipam.Tx.
func (t *tx) Networks() ([]string, error) {
	var out []string
	err := t.btx.Bucket(bNets).ForEachBucket(func(k []byte) error {
		out = append(out, string(k))
		return nil
	})
	return out, err
}

// Allocation implements ipam.Tx.
func (t *tx) Allocation(k ipam.Key) (ipam.Allocation, bool, error) {
	b, err := t.net([]byte(k.Network), bAlloc)
	if err != nil || b == nil {
		return ipam.Allocation{}, false, err
	}
	v := b.Get(allocKey(k))
	if v == nil {
		return ipam.Allocation{}, false, nil
	}
	a, err := decodeAlloc(k.Network, allocKey(k), v)
	return a, err == nil, err
}

// ForEachAllocation implements ipam.Tx.
func (t *tx) ForEachAllocation(network string, fn func(ipam.Allocation) error) error {
	b, err := t.net([]byte(network), bAlloc)
	if err != nil || b == nil {
		return err
	}
	return b.ForEach(func(k, v []byte) error {
		a, err := decodeAlloc(network, k, v)
		if err != nil {
			return err
		}
		return fn(a)
	})
}

// PutAllocation implements ipam.Tx.
func (t *tx) PutAllocation(a ipam.Allocation) error {
	v, err := json.Marshal(allocValue{IPs: a.IPs, Created: a.Created, Workload: a.Workload, HeldUntil: a.HeldUntil, Resumed: a.Resumed, Published: a.Published,
		Conflict: a.Conflict, RetryAt: a.RetryAt})
	if err != nil {
		return err
	}
	ab, err := t.net([]byte(a.Network), bAlloc)
	if err != nil {
		return err
	}
	rb, err := t.net([]byte(a.Network), bAddr)
	if err != nil {
		return err
	}
	for _, ip := range a.IPs {
		if err := rb.Put(addrKey(ip), allocKey(a.Key)); err != nil {
			return err
		}
	}
	return ab.Put(allocKey(a.Key), v)
}

// DeleteAllocation implements ipam.Tx.
func (t *tx) DeleteAllocation(k ipam.Key) error {
	a, ok, err := t.Allocation(k)
	if err != nil || !ok {
		return err
	}
	rb, err := t.net([]byte(k.Network), bAddr)
	if err != nil {
		return err
	}
	for _, ip := range a.IPs {
		if owner := rb.Get(addrKey(ip)); bytes.Equal(owner, allocKey(k)) {
			if err := rb.Delete(addrKey(ip)); err != nil {
				return err
			}
		}
	}
	ab, err := t.net([]byte(k.Network), bAlloc)
	if err != nil {
		return err
	}
	return ab.Delete(allocKey(k))
}

// Owner implements ipam.Tx.
func (t *tx) Owner(network string, addr netip.Addr) (ipam.Key, bool, error) {
	rb, err := t.net([]byte(network), bAddr)
	if err != nil || rb == nil {
		return ipam.Key{}, false, err
	}
	v := rb.Get(addrKey(addr))
	if v == nil {
		return ipam.Key{}, false, nil
	}
	cid, ifn, _ := strings.Cut(string(v), "\x00")
	return ipam.Key{Network: network, ContainerID: cid, IfName: ifn}, true, nil
}

// encodeBlock writes the Used words, the Reserved words (little-endian
// uint64) and, for a lost block, the Lost reason as trailing bytes.
func encodeBlock(b ipam.Block) []byte {
	out := make([]byte, 0, 16*len(b.Used)+len(b.Lost))
	for _, w := range b.Used {
		out = binary.LittleEndian.AppendUint64(out, w)
	}
	for _, w := range b.Reserved {
		out = binary.LittleEndian.AppendUint64(out, w)
	}
	out = append(out, b.Lost...)
	if b.Bound != "" {
		// A bound address's record name follows the Lost reason after a
		// NUL (never part of a reason): stores written before it existed
		// decode unchanged.
		out = append(append(out, 0), b.Bound...)
	}
	return out
}

func decodeBlock(k, v []byte) (ipam.Block, error) {
	p, ok := decodeBlockKey(k)
	if !ok {
		return ipam.Block{}, fmt.Errorf("boltstore: block key %x undecodable: %w", k, ipam.ErrCorrupt)
	}
	words := (int(ipam.Size(p)) + 63) / 64
	if p.Addr().BitLen()-p.Bits() > 16 || len(v) < 16*words {
		return ipam.Block{}, fmt.Errorf("boltstore: block %s: bitmap of %d bytes: %w", p, len(v), ipam.ErrCorrupt)
	}
	b := ipam.Block{Prefix: p, Used: make([]uint64, words), Reserved: make([]uint64, words)}
	for i := range words {
		b.Used[i] = binary.LittleEndian.Uint64(v[8*i:])
		b.Reserved[i] = binary.LittleEndian.Uint64(v[8*(words+i):])
	}
	b.Lost, b.Bound, _ = strings.Cut(string(v[16*words:]), "\x00")
	return b, nil
}

// ForEachHold implements ipam.Tx: a Seek to the hold prefix, so a network
// without holds costs one lookup.
func (t *tx) ForEachHold(network string, fn func(ipam.Allocation) error) error {
	b, err := t.net([]byte(network), bAlloc)
	if err != nil || b == nil {
		return err
	}
	pfx := []byte(ipam.HoldPrefix)
	c := b.Cursor()
	for k, v := c.Seek(pfx); k != nil && bytes.HasPrefix(k, pfx); k, v = c.Next() {
		a, err := decodeAlloc(network, k, v)
		if err != nil {
			return err
		}
		if err := fn(a); err != nil {
			return err
		}
	}
	return nil
}

// Meta implements ipam.Tx.
func (t *tx) Meta(network, key string) ([]byte, error) {
	b, err := t.net([]byte(network), bMetaN)
	if err != nil || b == nil {
		return nil, err
	}
	return bytes.Clone(b.Get([]byte(key))), nil
}

// PutMeta implements ipam.Tx.
func (t *tx) PutMeta(network, key string, v []byte) error {
	b, err := t.net([]byte(network), bMetaN)
	if err != nil {
		return err
	}
	return b.Put([]byte(key), v)
}
