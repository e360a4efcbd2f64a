package metrics

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/medianet/medianet/cni"
	"github.com/medianet/medianet/cni/etcdsource"
	"github.com/medianet/medianet/ipam"
	"github.com/medianet/medianet/ipam/etcdstore"
)

// Network is what the collector knows of a network beyond the store: its
// configuration as this node sees it, which gives the node's range, and,
// when its blocks are claimed in etcd, how to read the claims.
type Network struct {
	Config ipam.Config
	Etcd   *etcdstore.Config // nil: static node ranges or the whole subnet
}

// NetworkSource lists networks whose allocations live in the agent's
// store. It may return networks and an error (files it skipped) together.
type NetworkSource interface {
	Networks(ctx context.Context) ([]Network, error)
}

// ConfDirs is a NetworkSource over CNI configuration directories (as
// libcni reads them: *.conf, *.conflist and *.json, in name order; the
// first file naming a network wins). Each plugin entry whose ipam.type is
// medianet-ipam counts (the medianet plugin with its in-process IPAM, the
// reference macvlan with medianet-ipam, a delegated etcd network), when its
// ipam.dataDir is the agent's.
type ConfDirs struct {
	Dirs    []string
	DataDir string
	// Node is the node name for configurations without ipam.node.
	Node string
}

var _ NetworkSource = ConfDirs{}

// Networks implements NetworkSource. Unreadable or invalid files are
// skipped and named in the error.
func (c ConfDirs) Networks(context.Context) ([]Network, error) {
	var files []string
	var errs []error
	for _, d := range c.Dirs {
		es, err := os.ReadDir(d)
		if err != nil {
			errs = append(errs, fmt.Errorf("cni conf dir %s: %w", d, err))
			continue
		}
		for _, e := range es {
			if ext := filepath.Ext(e.Name()); !e.IsDir() && (ext == ".conf" || ext == ".conflist" || ext == ".json") {
				files = append(files, filepath.Join(d, e.Name()))
			}
		}
	}
	var out []Network
	seen := map[string]bool{}
	for _, f := range files {
		nets, err := c.readFile(f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, n := range nets {
			if !seen[n.Config.Network] {
				seen[n.Config.Network] = true
				out = append(out, n)
			}
		}
	}
	return out, errors.Join(errs...)
}

func (c ConfDirs) readFile(file string) ([]Network, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	confs, err := cni.IPAMConfs(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	var out []Network
	for _, raw := range confs {
		cc, err := cni.ParseConfig(raw)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		if filepath.Clean(cc.DataDir) != filepath.Clean(c.DataDir) {
			continue // another store's network
		}
		n := Network{Config: cc.IPAM}
		if n.Config.Node == "" {
			n.Config.Node = c.Node
		}
		if cc.UsesEtcd() {
			ec, err := etcdsource.ClientConfig(cc.Net.IPAM.Etcd)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", file, err)
			}
			n.Etcd = &ec
		}
		out = append(out, n)
	}
	return out, nil
}

// Static is a NetworkSource of fixed networks (tests, and medianetd's
// Docker pools, listed by the daemon itself).
type Static func(ctx context.Context) ([]Network, error)

// Networks implements NetworkSource.
func (s Static) Networks(ctx context.Context) ([]Network, error) { return s(ctx) }

// networksByName merges the sources' networks (the first source naming a
// network wins) and their errors.
func networksByName(ctx context.Context, srcs []NetworkSource) (map[string]*Network, error) {
	out := map[string]*Network{}
	var errs []error
	for _, s := range srcs {
		nets, err := s.Networks(ctx)
		if err != nil {
			errs = append(errs, err)
		}
		for i := range nets {
			if _, ok := out[nets[i].Config.Network]; !ok {
				out[nets[i].Config.Network] = &nets[i]
			}
		}
	}
	return out, errors.Join(errs...)
}

// sortedNames returns the keys of m in order.
func sortedNames[V any](m map[string]V) []string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

// errorText flattens err for a log line ("" for nil).
func errorText(err error) string {
	if err == nil {
		return ""
	}
	return strings.ReplaceAll(err.Error(), "\n", "; ")
}
