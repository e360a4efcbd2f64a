package dockerplugin

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/medianet/medianet/ipam"
)

// ipamDriver is the IpamDriver face of a Driver.
type ipamDriver Driver

// Address spaces answered by GetDefaultAddressSpaces. Overlap is checked
// within one space: on a Swarm manager that is also a node, the manager's
// global pool and the node's local pool of one network may coincide.
const (
	LocalAddressSpace  = "medianet-local"
	GlobalAddressSpace = "medianet-global"
)

// GetCapabilities asks for the endpoint's MAC with every address request:
// requests without one (the network's --aux-address) are told apart from
// containers' --ip by it.
func (d *ipamDriver) GetCapabilities() (ipamCapabilitiesResponse, error) {
	return ipamCapabilitiesResponse{RequiresMACAddress: true}, nil
}

func (d *ipamDriver) GetDefaultAddressSpaces() (addressSpacesResponse, error) {
	return addressSpacesResponse{LocalDefaultAddressSpace: LocalAddressSpace, GlobalDefaultAddressSpace: GlobalAddressSpace}, nil
}

// RequestPool validates --subnet, --ip-range and --ipam-opt and registers
// the pool. The same request again returns the same pool (counted); a
// different pool overlapping one of the same address space is refused,
// unless that one is stale (a local pool no view of the engine lists) or
// obsolete (a global pool this term's allocator never requested): such a
// pool is dropped first (reconcile.go, watch.go). The engine is not
// asked: Docker is inside its own work while it calls.
func (d *ipamDriver) RequestPool(req *requestPoolRequest) (requestPoolResponse, error) {
	p, err := d.newPool(req)
	if err != nil {
		return requestPoolResponse{}, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for attempt := 0; ; attempt++ {
		resp, conflicts, err := d.registerPool(p)
		if err != nil || len(conflicts) == 0 {
			return resp, err
		}
		var kept []pool
		for _, c := range conflicts {
			if !(*Driver)(d).droppable(c) {
				kept = append(kept, c)
			}
		}
		if len(kept) > 0 || attempt > 0 {
			if len(kept) == 0 {
				kept = conflicts
			}
			return requestPoolResponse{}, d.overlapError(p, kept)
		}
		for _, c := range conflicts {
			if err := (*Driver)(d).freePool(context.Background(), c); err != nil {
				return requestPoolResponse{}, err
			}
			d.log.Warn("dropped a stale pool: no network of the cluster uses it", "pool", c.ID, "subnet", c.Prefix, "networks", c.Networks, "for", p.Prefix, "node", d.node)
		}
	}
}

// droppable reports whether pool c, overlapping a new pool, may be
// dropped: a global pool not requested by this term's allocator, a local
// pool that the last view of the engine (asked for at least staleGrace
// after c was requested) shows unused. The caller holds d.mu.
func (d *Driver) droppable(c pool) bool {
	if c.Space == GlobalAddressSpace {
		return d.obsolete(c.Requested)
	}
	if d.lastView == nil || c.inUse(*d.lastView) {
		d.pokeReconcile() // a fresh view for the next attempt
		return false
	}
	return true
}

// registerPool registers p, or shares the identical pool, unless p
// overlaps other pools of its space: those are returned, with the
// identical one when it is global and obsolete (its network is being
// allocated again by a new leader, or is gone: a clean pool either way).
func (d *ipamDriver) registerPool(p pool) (requestPoolResponse, []pool, error) {
	var conflicts []pool
	now := d.now()
	err := d.st.db.Update(func(tx *bolt.Tx) error {
		var same *pool
		err := each(tx, bucketPools, func(o pool) error {
			switch {
			case o.Space != p.Space || !o.Prefix.Overlaps(p.Prefix):
			case o.Options.DHCP || p.Options.DHCP:
				// The server owns a DHCP pool's addresses: each network
				// has its own pool, which overlaps nothing of ours.
			case o.Prefix == p.Prefix && o.Range == p.Range && reflect.DeepEqual(o.Options, p.Options):
				same = &o
				if o.Space == GlobalAddressSpace && (*Driver)(d).obsolete(o.Requested) {
					conflicts = append(conflicts, o)
				}
			default:
				conflicts = append(conflicts, o)
			}
			return nil
		})
		if err != nil || len(conflicts) > 0 {
			return err
		}
		if same != nil {
			p = *same
		}
		p.Refs++
		p.Requested = now
		if p.Etcd {
			if err := put(tx, bucketEtcdNets, p.Net, p); err != nil {
				return err
			}
		}
		return put(tx, bucketPools, p.ID, p)
	})
	if err != nil || len(conflicts) > 0 {
		return requestPoolResponse{}, conflicts, err
	}
	return requestPoolResponse{PoolID: p.ID, Pool: p.Prefix.String()}, nil, nil
}

// overlapError refuses p for the pools it overlaps, saying how they were
// judged in use.
func (d *ipamDriver) overlapError(p pool, others []pool) error {
	o := others[0]
	used := "another network"
	if len(o.Networks) > 0 {
		used = "network " + strings.Join(o.Networks, ", ")
	}
	var why string
	switch {
	case o.Space == GlobalAddressSpace && d.notLeader.IsZero():
		why = "this manager was not seen not leading the Swarm since, so that network may still exist; remove it first (a network refused now is allocated again at the next leader change)"
	case o.Space == GlobalAddressSpace:
		why = fmt.Sprintf("it was requested by this leader's allocator (after this manager was last seen not leading, %s), so that network exists; remove it first",
			d.notLeader.UTC().Format(time.RFC3339))
	case d.lastView == nil:
		why = "Docker has not been asked yet whether that network still exists; remove it first, or try again in a few seconds"
	default:
		why = fmt.Sprintf("Docker listed it when last asked (%s); remove that network first, or try again in a few seconds if it is gone",
			d.lastView.asked.UTC().Format(time.RFC3339))
	}
	return fmt.Errorf("medianet: --subnet %s overlaps %s of %s (node %s): %w: %s", p.Prefix, o.Prefix, used, d.node, ErrPoolOverlap, why)
}

// newPool parses and validates a pool request.
func (d *ipamDriver) newPool(req *requestPoolRequest) (pool, error) {
	if o, err := parsePoolOptions(req.Options); err != nil {
		return pool{}, err
	} else if o.DHCP {
		return d.newDHCPPool(req, o)
	}
	if req.Pool == "" {
		return pool{}, fmt.Errorf("medianet: --subnet is required: %w: medianet does not pick subnets; give the LAN's, e.g. --subnet 192.168.100.0/24", ErrBadOption)
	}
	prefix, err := netip.ParsePrefix(req.Pool)
	if err != nil || prefix.Masked() != prefix || prefix.Addr().Is6() != req.V6 {
		return pool{}, fmt.Errorf("medianet: --subnet %q: %w: give a network address and prefix length, e.g. 192.168.100.0/24", req.Pool, ErrBadOption)
	}
	p := pool{Space: req.AddressSpace, Prefix: prefix}
	if p.Space == "" {
		p.Space = LocalAddressSpace
	}
	if req.SubPool != "" {
		r, err := netip.ParsePrefix(req.SubPool)
		if err != nil || r.Masked() != r || !ipam.Covers(prefix, r) {
			return pool{}, fmt.Errorf("medianet: --ip-range %q: %w: give a prefix inside --subnet %s", req.SubPool, ErrBadOption, prefix)
		}
		p.Range = r
	}
	if p.Options, err = parsePoolOptions(req.Options); err != nil {
		return pool{}, err
	}
	if p.Options.NodeRanges != nil && len(p.Options.NodeRanges[d.node]) == 0 {
		return pool{}, fmt.Errorf("medianet: --ipam-opt %s=%s: %w: no range for this node %q; add one, or start medianetd with the --node name the ranges use",
			optNodeRanges, req.Options[optNodeRanges], ErrBadOption, d.node)
	}
	for node, rs := range p.Options.NodeRanges {
		for _, r := range rs {
			if p.Range.IsValid() && !ipam.Covers(p.Range, r) {
				return pool{}, fmt.Errorf("medianet: --ipam-opt %s: %s of node %q is outside --ip-range %s: %w", optNodeRanges, r, node, p.Range, ErrBadOption)
			}
		}
	}
	// The ipam package has the last word on block sizes and node ranges.
	cfg := ipamConfig(p, d.node)
	if err := cfg.Validate(); err != nil {
		return pool{}, fmt.Errorf("medianet: --subnet %s with --ipam-opt %s: %w: %w", prefix, optionList(req.Options), ErrBadOption, err)
	}
	p.ID = fmt.Sprintf("%s/%s/%s", p.Space, prefix, randomID(4))
	if d.etcd != nil && p.Space == LocalAddressSpace && p.Options.NodeRanges == nil {
		if p.Range.IsValid() {
			return pool{}, fmt.Errorf("medianet: --ip-range %s: %w: not supported when medianetd claims blocks in etcd (--etcd-endpoints); drop --ip-range, or give --ipam-opt %s", p.Range, ErrBadOption, optNodeRanges)
		}
		p.Etcd, p.Net = true, etcdNetName(prefix)
	}
	return p, nil
}

func optionList(opts map[string]string) string {
	if len(opts) == 0 {
		return "(none)"
	}
	s := ""
	for _, k := range slices.Sorted(maps.Keys(opts)) {
		if s != "" {
			s += ","
		}
		s += k + "=" + opts[k]
	}
	return s
}

// ReleasePool drops one reference; the last frees every address of the
// pool. An unknown pool is success.
func (d *ipamDriver) ReleasePool(req *releasePoolRequest) (empty, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	p, ok, err := d.pool(req.PoolID)
	if err != nil || !ok {
		return empty{}, err
	}
	if p.Refs--; p.Refs <= 0 {
		return empty{}, (*Driver)(d).freePool(context.Background(), p)
	}
	return empty{}, (*Driver)(d).savePool(p)
}

func (d *ipamDriver) pool(id string) (p pool, ok bool, err error) {
	err = d.st.db.View(func(tx *bolt.Tx) error {
		ok, err = get(tx, bucketPools, id, &p)
		return err
	})
	return p, ok, err
}
