package dockerplugin

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/medianet/medianet/ipam"
)

// IPAMNetworks returns the ipam configuration of every pool this host
// holds, as medianetd's metrics read them (medianet_ipam_range_*): pools
// with static ranges (node-ranges, --ip-range or the whole subnet) apart
// from those whose blocks are claimed in etcd. It reads the driver's
// state only: no lock is taken and nothing is asked of etcd or the engine.
func (d *Driver) IPAMNetworks(ctx context.Context) (static, etcd []ipam.Config, err error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	ps, err := d.pools(func(pool) bool { return true })
	if err != nil {
		return nil, nil, fmt.Errorf("medianet: list pools on node %s: %w", d.node, err)
	}
	for _, p := range ps {
		cfg := ipamConfig(p, d.node)
		if p.Range.IsValid() && p.Options.NodeRanges == nil {
			// An --ip-range is this host's only range in the subnet.
			cfg.NodeRanges = map[string][]netip.Prefix{d.node: {p.Range}}
		}
		if p.Etcd {
			etcd = append(etcd, cfg)
		} else {
			static = append(static, cfg)
		}
	}
	return static, etcd, nil
}
