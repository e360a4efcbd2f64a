package cni

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/medianet/medianet/doctor"
	"github.com/medianet/medianet/ipam"
	"github.com/medianet/medianet/ipam/boltstore"
)

// The conflict check's defaults and bounds are ipam's, shared with the
// Docker driver.
const (
	DefaultConflictCheck = ipam.DefaultConflictCheck
	MaxConflictCheck     = ipam.MaxConflictCheck
	DefaultConflictRetry = ipam.DefaultConflictRetry
	ConflictTries        = ipam.ConflictTries
)

// Conflict is the conflict check of a network: how long to probe an
// address before handing it out (0: never), and how long an address
// that was answered for stays quarantined.
type Conflict struct {
	Check time.Duration
	Retry time.Duration
}

// parseConflict reads ipam.conflictCheck and ipam.conflictRetry.
func parseConflict(ic *IPAMConf) (Conflict, error) {
	c := Conflict{Check: DefaultConflictCheck, Retry: DefaultConflictRetry}
	if ic.ConflictCheck != "" {
		d, err := time.ParseDuration(ic.ConflictCheck)
		if ic.ConflictCheck == "0" {
			d, err = 0, nil
		}
		if err != nil || d < 0 || d > MaxConflictCheck {
			return c, configErr("ipam.conflictCheck %q: give a duration from \"0\" (no check) to %q, such as \"200ms\"", ic.ConflictCheck, MaxConflictCheck.String())
		}
		c.Check = d
	}
	if ic.ConflictRetry != "" {
		d, err := time.ParseDuration(ic.ConflictRetry)
		if err != nil || d < time.Second {
			return c, configErr("ipam.conflictRetry %q: give a duration of at least 1s, such as \"10m\"", ic.ConflictRetry)
		}
		c.Retry = d
	}
	return c, nil
}

// ipamAddProbed is ipamAdd followed, for medianet-ipam networks with a
// conflict check, by a probe of the addresses from the container's link
// (created, not configured yet). An address another host answers for is
// quarantined (one store write that gives up the attachment) and IPAM
// asked again, at most ConflictTries times: the ADD never returns an
// address another host answers for. On error nothing of the IPAM ADD is
// left (the caller's rollback starts only once this returns a result).
func (m *Main) ipamAddProbed(ctx context.Context, args *skel.CmdArgs, c *MainConfig) (_ *current.Result, retErr error) {
	if c.Net.IPAM.Type != IPAMType || c.Conflict.Check <= 0 {
		return m.ipamAdd(ctx, args, c)
	}
	var seen []ipam.Conflict
	for range ConflictTries {
		res, err := m.ipamAdd(ctx, args, c)
		if err != nil {
			if len(seen) > 0 {
				return nil, fmt.Errorf("%w (after quarantining %s)", err, conflictsText(seen))
			}
			return nil, err
		}
		answers, err := doctor.ProbeLink(ctx, args.Netns, args.IfName, resultAddrs(res), c.Conflict.Check)
		if err == nil && len(answers) == 0 {
			return res, nil
		}
		if err == nil {
			cs := toConflicts(answers)
			seen = append(seen, cs...)
			m.IPAM.stats.Conflicts += len(cs)
			err = m.quarantine(ctx, args, cs, c.Conflict.Retry)
			if err == nil {
				continue
			}
		}
		if aerr := m.ipamAbort(ctx, args, c); aerr != nil {
			return nil, fmt.Errorf("%w; undoing the allocation: %v", err, aerr)
		}
		return nil, err
	}
	return nil, ipam.ConflictError(c.Net.Name, ConflictTries, seen)
}

// quarantine records cs in the node's store (ipam.Quarantine) for the
// attachment of args, also when IPAM runs by exec (etcd networks): it is
// a local fact of the node's store, and needs no etcd.
func (m *Main) quarantine(ctx context.Context, args *skel.CmdArgs, cs []ipam.Conflict, retry time.Duration) error {
	ic, _, err := m.IPAM.Load(args)
	if err != nil {
		return err
	}
	st, err := boltstore.Open(ctx, ic.DataDir, boltstore.Options{Timeout: m.IPAM.StoreTimeout})
	if err != nil {
		return fmt.Errorf("ipam.dataDir: %w", err)
	}
	defer st.Close()
	k := ipam.Key{Network: ic.IPAM.Network, ContainerID: args.ContainerID, IfName: args.IfName}
	_, err = ipam.Quarantine(ctx, st, k, cs, time.Now().Add(retry))
	return err
}

func resultAddrs(res *current.Result) []netip.Addr {
	var out []netip.Addr
	for _, ip := range res.IPs {
		if a, ok := netip.AddrFromSlice(ip.Address.IP); ok {
			out = append(out, a.Unmap())
		}
	}
	return out
}

func toConflicts(as []doctor.Answer) []ipam.Conflict {
	out := make([]ipam.Conflict, len(as))
	for i, a := range as {
		out[i] = ipam.Conflict{Addr: a.Addr, MAC: a.MAC, At: a.At}
	}
	return out
}

func conflictsText(cs []ipam.Conflict) string {
	s := ""
	for i, c := range cs {
		if i > 0 {
			s += ", "
		}
		s += c.String()
	}
	return s
}
