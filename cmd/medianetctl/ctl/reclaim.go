package ctl

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/medianet/medianet/ipam/etcdstore"
)

// reclaim frees a dead node's blocks in etcd so other nodes can claim
// them. The password comes from env MEDIANET_ETCD_PASSWORD, never a flag
// (flags show in ps).
func (c *cmd) reclaim(args []string) error {
	fs := c.flags("ipam reclaim")
	node := fs.String("node", "", "the node whose blocks to free (required)")
	network := fs.String("network", "", "only this network (default: every network)")
	force := fs.Bool("force", false, "free blocks that may still hold live allocations")
	dryRun := fs.Bool("dry-run", false, "print what would be freed, change nothing")
	endpoints := fs.String("etcd-endpoints", "", "etcd client URLs, comma-separated (required)")
	prefix := fs.String("etcd-prefix", etcdstore.DefaultPrefix, "etcd key prefix (ipam.etcd.prefix)")
	ca := fs.String("etcd-ca", "", "CA file verifying etcd's certificate")
	cert := fs.String("etcd-cert", "", "client certificate file")
	key := fs.String("etcd-key", "", "client key file")
	user := fs.String("etcd-user", "", "etcd user (password in env MEDIANET_ETCD_PASSWORD)")
	kubeconfig := fs.String("kubeconfig", "", "the networks' blocks are in the Kubernetes API (ipam.kubernetes) reached with this kubeconfig")
	gone := fs.Bool("gone", false, "with --kubeconfig: free the blocks of every node whose Node object is gone (instead of --node)")
	if fs.Parse(args) != nil || fs.NArg() != 0 {
		return errUsage
	}
	if *kubeconfig != "" {
		if *endpoints != "" {
			return fmt.Errorf("ipam reclaim: --kubeconfig and --etcd-endpoints name two stores; a network's blocks live in one: %w", errUsage)
		}
		return c.reclaimKube(kubeReclaim{kubeconfig: *kubeconfig, node: *node, network: *network, gone: *gone, force: *force, dryRun: *dryRun})
	}
	if *gone {
		return fmt.Errorf("ipam reclaim: --gone needs --kubeconfig (with etcd, name the node with --node): %w", errUsage)
	}
	if *node == "" || *endpoints == "" {
		return fmt.Errorf("ipam reclaim: --node and --etcd-endpoints (or --kubeconfig) are required: %w", errUsage)
	}
	cli, err := etcdstore.New(etcdstore.Config{
		Endpoints: strings.Split(*endpoints, ","), Prefix: *prefix,
		CAFile: *ca, CertFile: *cert, KeyFile: *key,
		Username: *user, Password: os.Getenv("MEDIANET_ETCD_PASSWORD"),
	})
	if err != nil {
		return fmt.Errorf("ipam reclaim: %w", err)
	}
	defer cli.Close()
	res, err := cli.Reclaim(context.Background(), *node, etcdstore.ReclaimOptions{Network: *network, Force: *force, DryRun: *dryRun})
	verb := "freed"
	if *dryRun {
		verb = "would free"
	}
	for _, b := range res.Freed {
		fmt.Fprintf(c.out, "%s %s %s (node %s)\n", verb, b.Network, b.Block, *node)
	}
	for _, b := range res.Changed {
		fmt.Fprintf(c.out, "left %s %s: its claim changed while reclaiming\n", b.Network, b.Block)
	}
	for _, k := range res.Records {
		fmt.Fprintf(c.out, "%s sticky record %s (node %s)\n", verb, k, *node)
	}
	if err != nil {
		return fmt.Errorf("ipam reclaim --node %s: %w (check the node is gone, then add --force)", *node, err)
	}
	return nil
}
