package cni

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/medianet/medianet/ipam"
	"github.com/medianet/medianet/metrics/report"
)

// Versions are the CNI spec versions medianet-ipam speaks.
var Versions = version.PluginSupports("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")

// Funcs returns the verbs for skel.PluginMainFuncs: each loads the
// configuration, runs the verb, prints the result (converted to the
// configuration's cniVersion) and maps errors with Error/StatusError.
func (p *Plugin) Funcs() skel.CNIFuncs {
	ctx := context.Background()
	return skel.CNIFuncs{
		Add: func(args *skel.CmdArgs) error {
			return p.run("ADD", args, Error, func(c *Config, ips []netip.Addr) error {
				res, err := p.Add(ctx, args, c, ips)
				if err != nil {
					return err
				}
				return types.PrintResult(res, c.Net.CNIVersion)
			})
		},
		Del: func(args *skel.CmdArgs) error {
			return p.run("DEL", args, Error, func(c *Config, _ []netip.Addr) error { return p.Del(ctx, args, c) })
		},
		Check: func(args *skel.CmdArgs) error {
			return p.run("CHECK", args, Error, func(c *Config, _ []netip.Addr) error { return p.Check(ctx, args, c) })
		},
		GC: func(args *skel.CmdArgs) error {
			return p.run("GC", args, Error, func(c *Config, _ []netip.Addr) error { return p.GC(ctx, c, c.Net.ValidAttachments) })
		},
		Status: func(args *skel.CmdArgs) error {
			return p.run("STATUS", args, StatusError, func(c *Config, _ []netip.Addr) error { return p.Status(ctx, c) })
		},
	}
}

// run loads the configuration, runs fn, maps its error with mapErr and
// reports the outcome to the node's metrics agent.
func (p *Plugin) run(verb string, args *skel.CmdArgs, mapErr func(error) *types.Error, fn func(*Config, []netip.Addr) error) error {
	start := time.Now()
	c, ips, err := p.Load(args)
	if err == nil {
		err = fn(c, ips)
	}
	e := mapErr(err)
	network, dataDir := "", ""
	if c != nil {
		network, dataDir = c.Net.Name, c.DataDir
	}
	sendReport(report.PluginIPAM, verb, network, dataDir, start, p.stats, e)
	if e != nil {
		return withCode(e)
	}
	return nil
}

// prevResult returns the configuration's prevResult in the current version.
func prevResult(c *Config) (*current.Result, error) {
	return prevResultOf(&c.Net)
}

// prevResultOf returns n's prevResult in the current version.
func prevResultOf(n *NetConf) (*current.Result, error) {
	raw, err := json.Marshal(n.RawPrevResult)
	if err != nil {
		return nil, fmt.Errorf("prevResult: %w: %w", err, ipam.ErrConfig)
	}
	ver := n.CNIVersion
	if ver == "" {
		ver = "0.1.0"
	}
	res, err := version.NewResult(ver, raw)
	if err != nil {
		return nil, fmt.Errorf("prevResult: %w: %w", err, ipam.ErrConfig)
	}
	cur, err := current.NewResultFromResult(res)
	if err != nil {
		return nil, fmt.Errorf("prevResult: %w: %w", err, ipam.ErrConfig)
	}
	return cur, nil
}
