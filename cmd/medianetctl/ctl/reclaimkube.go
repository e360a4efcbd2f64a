package ctl

import (
	"context"
	"fmt"

	"github.com/medianet/medianet/ipam/kubestore"
)

// kubeReclaim is what `ipam reclaim --kubeconfig` was asked.
type kubeReclaim struct {
	kubeconfig, node, network string
	gone, force, dryRun       bool
}

// reclaimKube frees blocks kept in the Kubernetes API (ipam.kubernetes):
// those of one node (--node), or those whose claimant's Node object is
// gone (--gone). Each delete compares the object's resourceVersion, so a
// block its node touched meanwhile is left alone and reported.
func (c *cmd) reclaimKube(r kubeReclaim) error {
	if (r.node == "") == !r.gone {
		return fmt.Errorf("ipam reclaim --kubeconfig: give exactly one of --node NAME and --gone: %w", errUsage)
	}
	if r.gone && r.force {
		return fmt.Errorf("ipam reclaim --gone: --force is for --node only (a gone Node's blocks are freed without it): %w", errUsage)
	}
	cli, err := kubestore.New(kubestore.Config{Kubeconfig: r.kubeconfig})
	if err != nil {
		return fmt.Errorf("ipam reclaim: %w", err)
	}
	var res kubestore.ReclaimResult
	what := "--node " + r.node
	if r.gone {
		what = "--gone"
		res, err = cli.ReclaimGone(context.Background(), r.network, r.dryRun)
	} else {
		res, err = cli.Reclaim(context.Background(), r.network, r.node, r.force, r.dryRun)
	}
	verb := "freed"
	if r.dryRun {
		verb = "would free"
	}
	for _, b := range res.Freed {
		fmt.Fprintf(c.out, "%s %s %s (node %s)\n", verb, b.Network, b.CIDR, b.Node)
	}
	for _, b := range res.Live {
		fmt.Fprintf(c.out, "in use %s %s (node %s)\n", b.Network, b.CIDR, b.Node)
	}
	for _, b := range res.Changed {
		fmt.Fprintf(c.out, "left %s %s: its object changed while reclaiming\n", b.Network, b.CIDR)
	}
	if err != nil {
		return fmt.Errorf("ipam reclaim %s against %s: %w (check the node is gone, then add --force)", what, cli.Server(), err)
	}
	return nil
}
