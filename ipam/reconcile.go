package ipam

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// metaConfig is the Meta key holding the description of the configuration
// the network's held blocks were last brought in line with.
const metaConfig = "config"

// lostConfigPrefix starts the Lost reason of a block that the current
// configuration no longer gives this node. Such blocks become usable again
// when the configuration gives them back; blocks lost for other reasons
// (etcd) do not.
const lostConfigPrefix = "config: "

// LostToConfig reports whether a Lost reason comes from the node's
// configuration (reconcile), which a cluster source must not override.
func LostToConfig(reason string) bool { return strings.HasPrefix(reason, lostConfigPrefix) }

// blockState is what decides the state of held blocks: the reserved
// addresses of each subnet and, for a static source, the node's ranges.
type blockState struct {
	Reserved map[string][]netip.Prefix `json:"reserved"`
	Ranges   []netip.Prefix            `json:"ranges,omitempty"`
}

// state describes the current configuration's reserved addresses and the
// source's ranges (when ownership follows from the configuration).
func (a *Allocator) state() []byte {
	st := blockState{Reserved: map[string][]netip.Prefix{}}
	for _, s := range a.cfg.Subnets {
		st.Reserved[s.Prefix.String()] = a.cfg.Reserved(s)
	}
	if _, ok := a.src.(RangeOwner); ok {
		for _, s := range a.cfg.Subnets {
			st.Ranges = append(st.Ranges, a.src.Ranges(s.Prefix)...)
		}
	}
	b, _ := json.Marshal(st) // map keys are sorted: canonical
	return b
}

// reconcile brings the held blocks in line with the current configuration
// when it changed since the last time: Reserved bits recomputed (a new
// gateway or exclude is never handed out, also from blocks already held;
// an address reserved while allocated stays with its attachment and is
// reported by Check), and blocks outside the node's static ranges marked
// Lost (or usable again). It costs one Get when nothing changed.
func (a *Allocator) reconcile(tx Tx) error {
	want := a.state()
	got, err := tx.Meta(a.cfg.Network, metaConfig)
	if err != nil || string(got) == string(want) {
		return err
	}
	var blocks []Block
	err = tx.ForEachBlock(a.cfg.Network, func(b Block) error {
		blocks = append(blocks, b)
		return nil
	})
	if err != nil {
		return err
	}
	for _, b := range blocks {
		if err := tx.PutBlock(a.cfg.Network, a.current(b)); err != nil {
			return err
		}
	}
	return tx.PutMeta(a.cfg.Network, metaConfig, want)
}

// current returns b as the current configuration sees it: Reserved bits
// recomputed, and the configuration's Lost reason set or cleared. It
// writes nothing (Status and Check use it read-only).
func (a *Allocator) current(b Block) Block {
	b.Used = slices.Clone(b.Used)
	if s, ok := a.cfg.SubnetOf(b.Prefix.Addr()); ok {
		nb, err := NewBlock(b.Prefix, a.cfg.Reserved(s))
		if err == nil {
			b.Reserved = nb.Reserved
		}
	}
	reason := a.configLoss(b.Prefix)
	switch {
	case reason != "" && b.Lost == "":
		b.Lost = reason
	case reason == "" && LostToConfig(b.Lost):
		b.Lost = ""
	}
	return b
}

// configLoss returns why the configuration no longer gives p to this
// node, or "".
func (a *Allocator) configLoss(p netip.Prefix) string {
	s, ok := a.cfg.SubnetOf(p.Addr())
	if !ok || !Covers(s.Prefix, p) {
		return fmt.Sprintf("%sblock %s is outside the subnets %s", lostConfigPrefix, p, subnetList(a.cfg.Subnets))
	}
	if o, ok := a.src.(RangeOwner); ok && !o.Owns(p) {
		return fmt.Sprintf("%sblock %s is outside node %q's ranges %s", lostConfigPrefix, p, a.cfg.Node, prefixList(a.src.Ranges(s.Prefix)))
	}
	return ""
}

// markLost records blocks a source reported lost.
func (a *Allocator) markLost(tx Tx, lost []LostBlock) error {
	for _, l := range lost {
		b, ok, err := tx.BlockContaining(a.cfg.Network, l.Prefix.Addr())
		if err != nil {
			return err
		}
		if !ok || b.Prefix != l.Prefix || b.Lost == l.Reason {
			continue
		}
		b.Lost = l.Reason
		if err := tx.PutBlock(a.cfg.Network, b); err != nil {
			return err
		}
	}
	return nil
}
