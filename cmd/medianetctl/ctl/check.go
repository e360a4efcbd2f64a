package ctl

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/medianet/medianet/cni"
	"github.com/medianet/medianet/cni/etcdsource"
	"github.com/medianet/medianet/ipam"
	"github.com/medianet/medianet/ipam/boltstore"
)

// checkReport is `ipam check --json`.
type checkReport struct {
	Store      string         `json:"store"`
	Consistent bool           `json:"consistent"`
	Findings   []ipam.Finding `json:"findings"`
}

// check verifies the store and lists what an operator should act on:
// addresses that became reserved while in use, lost blocks and the
// attachments in them. With CONFIG files (the node's .conf/.conflist),
// reserved addresses and ranges are taken from them, as they are now,
// rather than from what the store recorded at its last ADD. With
// --kubeconfig, the store is also compared with the Kubernetes API for
// its ipam.kubernetes networks (kubeFindings), writing neither.
func (c *cmd) check(args []string) error {
	fs := c.flags("ipam check")
	asJSON := fs.Bool("json", false, "print JSON")
	kubeconfig := fs.String("kubeconfig", "", "also compare the store with the Kubernetes API (ipam.kubernetes networks of CONFIG or recorded in --data-dir), read-only")
	if fs.Parse(args) != nil {
		return errUsage
	}
	return c.withStore(func(ctx context.Context, st *boltstore.Store) error {
		if err := st.Check(ctx); err != nil {
			return err
		}
		findings, err := c.findings(ctx, st, fs.Args())
		if err != nil {
			return err
		}
		if *kubeconfig != "" {
			kf, err := c.kubeFindings(ctx, st, fs.Args(), *kubeconfig)
			if err != nil {
				return err
			}
			findings = append(findings, kf...)
		}
		if *asJSON {
			enc := json.NewEncoder(c.out)
			enc.SetIndent("", "  ")
			if err := enc.Encode(checkReport{Store: st.Path(), Consistent: true, Findings: findings}); err != nil {
				return err
			}
		} else {
			fmt.Fprintf(c.out, "%s: consistent, %d findings\n", st.Path(), len(findings))
			for _, f := range findings {
				fmt.Fprintln(c.out, f.String())
			}
		}
		if len(findings) > 0 {
			return errFindings
		}
		return nil
	})
}

// findings returns the store's findings, per network from CONFIG when
// given (networks without a config keep the store's view).
func (c *cmd) findings(ctx context.Context, st ipam.Store, files []string) ([]ipam.Finding, error) {
	if len(files) == 0 {
		return ipam.Check(ctx, st)
	}
	all, err := ipam.Check(ctx, st)
	if err != nil {
		return nil, err
	}
	var out []ipam.Finding
	seen := map[string]bool{}
	err = forEachConfig(files, func(conf *cni.Config) error {
		a, done, err := allocatorFor(ctx, conf, st)
		if err != nil {
			return err
		}
		defer done()
		f, err := a.Check(ctx)
		out = append(out, f...)
		seen[conf.IPAM.Network] = true
		return err
	})
	for _, f := range all {
		if !seen[f.Network] {
			out = append(out, f)
		}
	}
	return out, err
}

// sync brings the cluster store (etcd, or the Kubernetes API) and the
// node's store in line for the networks of CONFIG
// (etcdstore.Source.SyncIdle, kubestore.Source.SyncIdle): usage
// published, idle blocks given back, lost blocks recorded, foreign
// reservations released, orphan claims adopted. What GC and the node
// agent do on their own; for an operator, or a node without either.
// --kubeconfig replaces ipam.kubernetes.kubeconfig (the operator's
// credentials, or a file where the configuration says in-cluster).
func (c *cmd) sync(args []string) error {
	fs := c.flags("ipam sync")
	kubeconfig := fs.String("kubeconfig", "", "reach the Kubernetes API with this kubeconfig instead of the one ipam.kubernetes names")
	if fs.Parse(args) != nil || fs.NArg() == 0 {
		return errUsage
	}
	files := fs.Args()
	return c.withStore(func(ctx context.Context, st *boltstore.Store) error {
		return forEachConfig(files, func(conf *cni.Config) error {
			if conf.UsesKubernetes() {
				return c.syncKube(ctx, conf, st, *kubeconfig)
			}
			if !conf.UsesEtcd() {
				fmt.Fprintf(c.out, "%s: no ipam.etcd nor ipam.kubernetes, nothing to sync\n", conf.IPAM.Network)
				return nil
			}
			res, err := etcdsource.Sync(ctx, conf, st, time.Now())
			if err != nil {
				return fmt.Errorf("network %q: %w", conf.IPAM.Network, err)
			}
			fmt.Fprintf(c.out, "%s: %d marked, %d given back, %d taken back, %d lost, %d foreign released\n", conf.IPAM.Network,
				len(res.Marked), len(res.Released), len(res.Reclaimed), len(res.Lost), len(res.Foreign))
			return nil
		})
	})
}

// forEachConfig parses each medianet-ipam configuration in files, with
// the node name as the plugin would find it (ipam.node, MEDIANET_NODE,
// NODE_NAME, the hostname).
func forEachConfig(files []string, fn func(*cni.Config) error) error {
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		confs, err := ipamConfs(data)
		if err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		for _, raw := range confs {
			conf, err := cni.ParseConfig(raw)
			if err != nil {
				return fmt.Errorf("%s: %w", file, err)
			}
			if conf.IPAM.Node, err = (cni.Env{}).Node(conf, nil); err != nil {
				return fmt.Errorf("%s: %w", file, err)
			}
			if err := fn(conf); err != nil {
				return fmt.Errorf("%s: %w", file, err)
			}
		}
	}
	return nil
}

// allocatorFor returns the allocator of conf over st, with its block
// source (etcd's connects lazily: Check makes no call). A kubernetes
// network gets the static whole-subnet source here: its ranges are the
// same (kubestore.Source.Ranges), and Check needs no client.
func allocatorFor(ctx context.Context, conf *cni.Config, st ipam.Store) (*ipam.Allocator, func(), error) {
	src, done, err := etcdsource.Source(ctx, conf, st)
	if err != nil {
		return nil, nil, err
	}
	a, err := ipam.NewAllocator(conf.IPAM, st, src)
	if err != nil {
		done()
		return nil, nil, err
	}
	return a, done, nil
}
