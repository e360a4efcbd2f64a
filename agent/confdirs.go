package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/medianet/medianet/cni"
	"github.com/medianet/medianet/cni/etcdsource"
	"github.com/medianet/medianet/metrics"
)

// ConfDirs reads CNI configuration directories (as libcni reads them:
// *.conf, *.conflist and *.json, in name order; the first file naming a
// network wins). Each plugin entry whose ipam.type is medianet-ipam counts
// (the medianet plugin with its in-process IPAM, the reference macvlan
// with medianet-ipam, a delegated etcd network), when its ipam.dataDir is
// the agent's.
type ConfDirs struct {
	Dirs    []string
	DataDir string
	// Node is the node name for configurations without ipam.node.
	Node string
}

var _ metrics.NetworkSource = ConfDirs{}

// Configs returns the networks of the directories. Unreadable or invalid
// files are skipped and named in the error.
func (c ConfDirs) Configs() ([]*cni.Config, error) {
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
	var out []*cni.Config
	seen := map[string]bool{}
	for _, f := range files {
		confs, err := c.readFile(f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, cc := range confs {
			if !seen[cc.IPAM.Network] {
				seen[cc.IPAM.Network] = true
				out = append(out, cc)
			}
		}
	}
	return out, errors.Join(errs...)
}

func (c ConfDirs) readFile(file string) ([]*cni.Config, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	raws, err := cni.IPAMConfs(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	var out []*cni.Config
	for _, raw := range raws {
		cc, err := cni.ParseConfig(raw)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		if filepath.Clean(cc.DataDir) != filepath.Clean(c.DataDir) {
			continue // another store's network
		}
		if cc.IPAM.Node == "" {
			cc.IPAM.Node = c.Node
		}
		out = append(out, cc)
	}
	return out, nil
}

// Networks implements metrics.NetworkSource.
func (c ConfDirs) Networks(context.Context) ([]metrics.Network, error) {
	confs, err := c.Configs()
	nets, nerr := networks(confs)
	return nets, errors.Join(err, nerr)
}

// Recorded reads the cluster networks (ipam.etcd, ipam.kubernetes) the
// plugin recorded in DataDir (cni.Record).
type Recorded struct {
	DataDir string
	// Node is the node name for records without one.
	Node string
}

var _ metrics.NetworkSource = Recorded{}

// Configs returns the recorded networks; records that do not parse are
// skipped and named in the error.
func (r Recorded) Configs() ([]*cni.Config, error) {
	confs, err := cni.Recorded(r.DataDir)
	var out []*cni.Config
	for _, c := range confs {
		if filepath.Clean(c.DataDir) != filepath.Clean(r.DataDir) || !c.UsesEtcd() && !c.UsesKubernetes() {
			continue // copied from another data directory
		}
		if c.IPAM.Node == "" {
			c.IPAM.Node = r.Node
		}
		out = append(out, c)
	}
	return out, err
}

// Networks implements metrics.NetworkSource.
func (r Recorded) Networks(context.Context) ([]metrics.Network, error) {
	confs, err := r.Configs()
	nets, nerr := networks(confs)
	return nets, errors.Join(err, nerr)
}

// networks turns configurations into what metrics reads of them.
func networks(confs []*cni.Config) ([]metrics.Network, error) {
	var out []metrics.Network
	var errs []error
	for _, cc := range confs {
		n := metrics.Network{Config: cc.IPAM}
		if cc.UsesEtcd() {
			ec, err := etcdsource.ClientConfig(cc.Net.IPAM.Etcd)
			if err != nil {
				errs = append(errs, fmt.Errorf("network %q: %w", cc.IPAM.Network, err))
				continue
			}
			n.Etcd = &ec
		}
		out = append(out, n)
	}
	return out, errors.Join(errs...)
}
