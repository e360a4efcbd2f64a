package ctl

import (
	"context"
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/medianet/medianet/cni"
	"github.com/medianet/medianet/cni/kubesource"
	"github.com/medianet/medianet/ipam"
	"github.com/medianet/medianet/ipam/kubestore"
)

// blockEntry is one block claim in `ipam list --kubeconfig --json`.
type blockEntry struct {
	Network    string    `json:"network"`
	Node       string    `json:"node"`
	Block      string    `json:"block"`
	InUse      int       `json:"inUse"`
	EmptySince time.Time `json:"emptySince,omitzero"`
	Object     string    `json:"object"`
}

// listKube lists the block claims kept in the Kubernetes API (every
// node's; of network only, when set): the cluster-wide view beside the
// node's own `ipam list`.
func (c *cmd) listKube(kubeconfig, network string, asJSON bool) error {
	cli, err := kubestore.New(kubestore.Config{Kubeconfig: kubeconfig})
	if err != nil {
		return fmt.Errorf("ipam list --kubeconfig: %w", err)
	}
	blocks, err := cli.Blocks(context.Background(), network, "")
	if err != nil {
		return fmt.Errorf("ipam list --kubeconfig: %w", err)
	}
	entries := make([]blockEntry, 0, len(blocks))
	for _, b := range blocks {
		entries = append(entries, blockEntry{Network: b.Network, Node: b.Node, Block: b.CIDR.String(), InUse: b.InUse,
			EmptySince: b.EmptySince, Object: b.Name()})
	}
	if asJSON {
		enc := json.NewEncoder(c.out)
		enc.SetIndent("", "  ")
		return enc.Encode(entries)
	}
	tw := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NETWORK\tNODE\tBLOCK\tIN USE\tEMPTY SINCE\tOBJECT")
	for _, e := range entries {
		empty := "-"
		if !e.EmptySince.IsZero() {
			empty = e.EmptySince.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", e.Network, e.Node, e.Block, e.InUse, empty, e.Object)
	}
	return tw.Flush()
}

// withKubeconfig returns conf with ipam.kubernetes.kubeconfig replaced by
// kubeconfig when it is set (an operator's credentials instead of the
// node's), conf itself otherwise.
func withKubeconfig(conf *cni.Config, kubeconfig string) *cni.Config {
	if kubeconfig == "" || conf.Net.IPAM.Kubernetes == nil {
		return conf
	}
	cc := *conf
	k := *conf.Net.IPAM.Kubernetes
	k.Kubeconfig = kubeconfig
	cc.Net.IPAM.Kubernetes = &k
	return &cc
}

// syncKube runs the node's sync of conf's kubernetes network once.
func (c *cmd) syncKube(ctx context.Context, conf *cni.Config, st ipam.Store, kubeconfig string) error {
	res, err := kubesource.Sync(ctx, withKubeconfig(conf, kubeconfig), st, time.Now())
	if err != nil {
		return fmt.Errorf("network %q: %w", conf.IPAM.Network, err)
	}
	fmt.Fprintf(c.out, "%s: %d marked, %d given back, %d taken back, %d lost, %d adopted\n", conf.IPAM.Network,
		len(res.Marked), len(res.Released), len(res.Reclaimed), len(res.Lost), len(res.Adopted))
	return nil
}

// kubeFindings compares the store with the Kubernetes API, read-only
// (kubestore.Source.Audit), for the kubernetes networks of files and
// those the plugin recorded in the data directory (cni.Record) that no
// file names, reaching the API with kubeconfig.
func (c *cmd) kubeFindings(ctx context.Context, st ipam.Store, files []string, kubeconfig string) ([]ipam.Finding, error) {
	var confs []*cni.Config
	seen := map[string]bool{}
	err := forEachConfig(files, func(conf *cni.Config) error {
		if conf.UsesKubernetes() && !seen[conf.IPAM.Network] {
			seen[conf.IPAM.Network] = true
			confs = append(confs, conf)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	recorded, err := cni.Recorded(c.dataDir)
	if err != nil {
		return nil, err
	}
	for _, conf := range recorded {
		if conf.UsesKubernetes() && !seen[conf.IPAM.Network] {
			seen[conf.IPAM.Network] = true
			confs = append(confs, conf)
		}
	}
	if len(confs) == 0 {
		return nil, fmt.Errorf("--kubeconfig: no network with ipam.kubernetes in the files given nor recorded in %s: name the node's configuration files", c.dataDir)
	}
	var out []ipam.Finding
	for _, conf := range confs {
		f, err := audit(ctx, withKubeconfig(conf, kubeconfig), st)
		if err != nil {
			return nil, err
		}
		out = append(out, f...)
	}
	return out, nil
}

func audit(ctx context.Context, conf *cni.Config, st ipam.Store) ([]ipam.Finding, error) {
	cfg, err := kubesource.ClientConfig(conf.Net.IPAM.Kubernetes)
	if err != nil {
		return nil, fmt.Errorf("network %q: %w", conf.IPAM.Network, err)
	}
	cli, err := kubestore.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("network %q: %w", conf.IPAM.Network, err)
	}
	src, err := kubestore.NewSource(cli, &conf.IPAM, st)
	if err != nil {
		return nil, fmt.Errorf("network %q: %w", conf.IPAM.Network, err)
	}
	return src.Audit(ctx, st)
}
