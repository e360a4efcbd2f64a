package kubestore

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/medianet/medianet/ipam"
)

// Finding kinds Audit reports beside ipam's lost-block and in-lost-block.
const (
	// FindingUnclaimedBlock: the node holds a block that no IPAMBlock
	// claims (its object was deleted: a forced reclaim, an operator). The
	// node's next sync claims it again, or marks it lost when another
	// node claimed it meanwhile.
	FindingUnclaimedBlock = "unclaimed-block"
	// FindingUnrecordedClaim: an IPAMBlock gives this node a block its
	// store does not hold (an ADD killed between its claim and its
	// record). The node's next sync adopts it.
	FindingUnrecordedClaim = "unrecorded-claim"
)

// Audit compares the node's store with the network's IPAMBlocks and
// writes neither: one list of the network's claims, then one read
// transaction of the store. It reports, as findings of the source's
// network:
//   - lost-block: a held block, still usable here, that the API gives
//     another node (the sync has not marked it yet), and in-lost-block
//     for each attachment in it;
//   - unclaimed-block: a held block with no object;
//   - unrecorded-claim: this node's claim of a block the store lacks.
//
// Blocks the store already marks lost are ipam.Check's findings and are
// not repeated. The list is bounded by Config.RequestTimeout; an
// unreachable API server is ErrUnavailable.
func (s *Source) Audit(ctx context.Context, st ipam.Store) ([]ipam.Finding, error) {
	claims, err := s.c.Blocks(ctx, s.net.Name, "")
	if err != nil {
		return nil, err
	}
	byCIDR := map[netip.Prefix]Block{}
	for _, b := range claims {
		byCIDR[b.CIDR] = b
	}
	var out []ipam.Finding
	err = st.View(ctx, func(tx ipam.Tx) error {
		lost := map[netip.Prefix]string{}
		err := tx.ForEachBlock(s.net.Name, func(hb ipam.Block) error {
			if hb.IsBound() || !hb.Usable() {
				return nil
			}
			b, ok := byCIDR[hb.Prefix]
			switch {
			case !ok:
				out = append(out, ipam.Finding{Network: s.net.Name, Kind: FindingUnclaimedBlock, Block: hb.Prefix,
					Detail: fmt.Sprintf("held by node %q with no IPAMBlock %s at %s: its next sync claims it again, or marks it lost if another node has it",
						s.node, BlockName(s.net.Name, hb.Prefix), s.c.Server())})
			case b.Node != s.node:
				lost[hb.Prefix] = lostReason(b)
				out = append(out, ipam.Finding{Network: s.net.Name, Kind: ipam.FindingLostBlock, Block: hb.Prefix,
					Detail: fmt.Sprintf("%s, while node %q holds it: its next sync marks it lost", lostReason(b), s.node)})
			}
			return nil
		})
		if err != nil {
			return err
		}
		if err := inLost(tx, s.net.Name, lost, &out); err != nil {
			return err
		}
		for _, b := range claims {
			missing, err := s.orphan(tx, b)
			if err != nil {
				return err
			}
			if missing {
				out = append(out, ipam.Finding{Network: s.net.Name, Kind: FindingUnrecordedClaim, Block: b.CIDR,
					Detail: fmt.Sprintf("IPAMBlock %s gives node %q this block, which its store does not hold: its next sync adopts it", b.name, s.node)})
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("network %q: audit the store against the Kubernetes API: %w", s.net.Name, err)
	}
	return out, nil
}

// inLost adds an in-lost-block finding for each attachment with an
// address in one of the lost blocks.
func inLost(tx ipam.Tx, network string, lost map[netip.Prefix]string, out *[]ipam.Finding) error {
	if len(lost) == 0 {
		return nil
	}
	return tx.ForEachAllocation(network, func(a ipam.Allocation) error {
		for _, ip := range a.IPs {
			for p, reason := range lost {
				if p.Contains(ip) {
					*out = append(*out, ipam.Finding{Network: network, Kind: ipam.FindingInLostBlock, Block: p, Addr: ip,
						Holder: &a.Key, Workload: a.Workload, Detail: reason + "; another node may hand this address out: move the workload"})
				}
			}
		}
		return nil
	})
}
