package dockerplugin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/medianet/medianet/ipam"
	"github.com/medianet/medianet/ipam/boltstore"
	"github.com/medianet/medianet/ipam/etcdstore"
	"github.com/medianet/medianet/macvlan"
)

// ifName is the interface name of every Docker allocation in the IPAM
// store; the container ID field holds the allocation's holder
// ("docker-<random>" or "aux-<address>"), since Docker's IPAM calls name
// no container.
const ifName = "docker"

// ipamBook is the addressBook over the IPAM store in dir (ipam.db),
// opened per call like the CNI plugin does, so medianetctl and the CNI
// plugin can use the same store.
//
// A pool is one ipam network named by the pool ID. Without node ranges, a
// preferred address outside --ip-range (a static --ip, or an
// --aux-address) goes to a second ipam network, "<pool ID>/static", whose
// configuration excludes the range: the two never hand out the same address
// and the dynamic one never leaves the range.
//
// A pool with Etcd set (medianetd --etcd-endpoints, no node ranges) is the
// ipam network "docker-<subnet>" on every host, and its blocks come from
// etcd (etcdstore.Source): a new block is claimed only when the held ones
// are full, so allocation from held blocks never waits for etcd.
type ipamBook struct {
	dir  string
	etcd *etcdstore.Client // nil without --etcd-endpoints
}

var _ addressBook = (*ipamBook)(nil)

func staticNet(poolID string) string { return poolID + "/static" }

func (b *ipamBook) with(ctx context.Context, fn func(ipam.Store) error) error {
	st, err := boltstore.Open(ctx, b.dir, boltstore.Options{})
	if err != nil {
		return err
	}
	err = fn(st)
	if cerr := st.Close(); err == nil {
		err = cerr
	}
	return err
}

func (b *ipamBook) Allocate(ctx context.Context, p pool, node, holder string, want netip.Addr) (netip.Addr, error) {
	cfg := ipamConfig(p, node)
	var src ipam.BlockSource
	if p.Etcd && b.etcd == nil {
		return netip.Addr{}, fmt.Errorf("pool %s claims its blocks in etcd: %w: start medianetd with --etcd-endpoints", p.ID, ErrEtcdRequired)
	}
	if p.Range.IsValid() && p.Options.NodeRanges == nil {
		if want.IsValid() && !p.Range.Contains(want) {
			cfg.Network = staticNet(p.ipamNet())
			cfg.Exclude = []netip.Prefix{p.Range}
		} else {
			src = &ipam.StaticSource{NodeRanges: []netip.Prefix{p.Range}}
		}
	}
	req := ipam.Request{ContainerID: holder, IfName: ifName}
	if want.IsValid() {
		req.IPs = []netip.Addr{want}
	}
	var got netip.Addr
	err := b.with(ctx, func(st ipam.Store) error {
		if p.Etcd {
			es, err := etcdstore.NewSource(b.etcd, &cfg, st)
			if err != nil {
				return err
			}
			src = es
		}
		a, err := ipam.NewAllocator(cfg, st, src)
		if err != nil {
			return err
		}
		alloc, err := a.Allocate(ctx, req)
		if err != nil {
			return err
		}
		if len(alloc.IPs) != 1 {
			return fmt.Errorf("pool %s: got %d addresses, want 1", p.ID, len(alloc.IPs))
		}
		got = alloc.IPs[0]
		return nil
	})
	return got, err
}

// Quarantine gives up holder's allocation in p and quarantines the
// addresses of cs (ipam.Quarantine), in the ipam network Allocate used.
func (b *ipamBook) Quarantine(ctx context.Context, p pool, holder string, want netip.Addr, cs []ipam.Conflict, retryAt time.Time) error {
	n := p.ipamNet()
	if p.Range.IsValid() && p.Options.NodeRanges == nil && want.IsValid() && !p.Range.Contains(want) {
		n = staticNet(n)
	}
	return b.with(ctx, func(st ipam.Store) error {
		_, err := ipam.Quarantine(ctx, st, ipam.Key{Network: n, ContainerID: holder, IfName: ifName}, cs, retryAt)
		return err
	})
}

func (b *ipamBook) Release(ctx context.Context, p pool, a netip.Addr) error {
	return b.with(ctx, func(st ipam.Store) error {
		for _, n := range []string{p.ipamNet(), staticNet(p.ipamNet())} {
			var key ipam.Key
			var ok bool
			err := st.View(ctx, func(tx ipam.Tx) error {
				var err error
				key, ok, err = tx.Owner(n, a)
				return err
			})
			if err != nil || !ok {
				if err != nil {
					return err
				}
				continue
			}
			_, _, err = ipam.Release(ctx, st, key)
			return err
		}
		return nil
	})
}

func (b *ipamBook) Held(ctx context.Context, p pool, a netip.Addr) (bool, error) {
	held := false
	err := b.with(ctx, func(st ipam.Store) error {
		return st.View(ctx, func(tx ipam.Tx) error {
			for _, n := range []string{p.ipamNet(), staticNet(p.ipamNet())} {
				_, ok, err := tx.Owner(n, a)
				if err != nil || ok {
					held = ok
					return err
				}
			}
			return nil
		})
	})
	return held, err
}

func (b *ipamBook) ReleaseAll(ctx context.Context, p pool) error {
	return b.with(ctx, func(st ipam.Store) error {
		for _, n := range []string{p.ipamNet(), staticNet(p.ipamNet())} {
			if _, err := ipam.GC(ctx, st, n, nil); err != nil {
				return err
			}
			// GC keeps reservations; the pool's quarantines go with it.
			if err := ipam.ReleaseConflicts(ctx, st, n); err != nil {
				return err
			}
		}
		return nil
	})
}

// ReleaseExcept frees every address of p but those in keep. It lists,
// then releases in a second transaction: its callers (bind.go) run while
// no address of p is being allocated (the Swarm allocator calls one at a
// time).
func (b *ipamBook) ReleaseExcept(ctx context.Context, p pool, keep []netip.Addr) error {
	return b.with(ctx, func(st ipam.Store) error {
		for _, n := range []string{p.ipamNet(), staticNet(p.ipamNet())} {
			all, err := ipam.List(ctx, st, n)
			if err != nil {
				return err
			}
			var valid []ipam.Attachment
			for _, a := range all {
				if slices.ContainsFunc(a.IPs, func(ip netip.Addr) bool { return slices.Contains(keep, ip) }) {
					valid = append(valid, ipam.Attachment{ContainerID: a.ContainerID, IfName: a.IfName})
				}
			}
			if _, err := ipam.GC(ctx, st, n, valid); err != nil {
				return err
			}
		}
		return nil
	})
}

// hostLinks is the linkMaker in medianetd's own network namespace, which
// is the host's: a managed plugin runs with network type host.
type hostLinks struct{}

var _ linkMaker = hostLinks{}

func (hostLinks) ParentExists(name string) error {
	if _, err := net.InterfaceByName(name); err != nil {
		return fmt.Errorf("%q: %w", name, ErrParentNotFound)
	}
	return nil
}

func (hostLinks) EnsureVLAN(parent string, vlan int) (bool, error) {
	_, created, err := macvlan.EnsureVLAN("", parent, vlan)
	return created, err
}

func (hostLinks) DeleteVLAN(name string) error { return macvlan.DeleteVLAN("", name) }

func (hostLinks) Create(spec macvlan.Spec, name string) error {
	_, err := macvlan.CreateInHost("", spec, name)
	if errors.Is(err, macvlan.ErrMasterNotFound) {
		return fmt.Errorf("%w: %w", err, ErrParentNotFound)
	}
	return err
}

func (hostLinks) Delete(name string) error { return macvlan.Delete("", name) }

func (hostLinks) AnnounceFor(parent string, mac net.HardwareAddr, addrs []netip.Addr) error {
	return macvlan.AnnounceFor("", parent, mac, addrs)
}

func (hostLinks) AnnounceWhenConfigured(ctx context.Context, nsPath string, mac net.HardwareAddr, addrs []netip.Addr) error {
	return macvlan.AnnounceWhenConfigured(ctx, nsPath, mac, addrs)
}

// sandboxDir holds the network namespaces of Docker's sandboxes (the
// managed plugin mounts it).
const sandboxDir = "/var/run/docker/netns"

// Alive reports whether a macvlan with address mac exists in the network
// namespace of one of Docker's sandboxes: an endpoint's link lives in its
// container's once joined. Namespaces that vanish meanwhile are skipped.
func (hostLinks) Alive(mac net.HardwareAddr) (bool, error) {
	paths, err := filepath.Glob(filepath.Join(sandboxDir, "*"))
	if err != nil {
		return false, err
	}
	for _, p := range paths {
		if found, err := macvlanWith(p, mac); err == nil && found {
			return true, nil
		}
	}
	return false, nil
}

// macvlanWith reports whether the namespace at path has a macvlan with
// address mac.
func macvlanWith(path string, mac net.HardwareAddr) (bool, error) {
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return false, err
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return false, err
	}
	defer h.Close()
	links, err := h.LinkList()
	if err != nil {
		return false, err
	}
	for _, l := range links {
		if l.Type() == "macvlan" && bytes.Equal(l.Attrs().HardwareAddr, mac) {
			return true, nil
		}
	}
	return false, nil
}

// List names the macvlan links in the host namespace.
func (hostLinks) List() ([]string, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, l := range links {
		if l.Type() == "macvlan" {
			out = append(out, l.Attrs().Name)
		}
	}
	return out, nil
}
