package kubestore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"math"
	"net/netip"
	"slices"
	"time"

	"github.com/medianet/medianet/ipam"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

// Sticky addresses across nodes (docs/design.md, "Sticky addresses"),
// the design of ipam/etcdstore/sticky.go on Kubernetes objects. One
// IPAMSticky object per sticky workload and interface decides which node
// its addresses are bound to:
//
//	IPAMSticky <net>.<sha256(workload, ifname)>  spec {network, workload, ifname, node, state, ips, until, writes}
//
// state "live" on node N, or "held" on N until T. Every change is one
// request conditional on the object as read, the exact counterpart of
// the etcd source's single-key compare-and-swap (its sticky decisions
// use no multi-key transaction):
//
//	etcd                                 Kubernetes API
//	compare CreateRevision == 0, put     create (409 AlreadyExists: not done)
//	compare ModRevision == r, put        update with resourceVersion r (409 Conflict, 404: not done)
//	compare ModRevision == r, delete     delete with preconditions {resourceVersion r, uid} (409, 404: not done)
//	a key's ModRevision                  the object's resourceVersion
//	the header revision of a read        the resourceVersion of a list (by metadata.name)
//	range read of the records            one list of the network's IPAMSticky objects
//
// resourceVersions are the API server's storage revisions: an object
// deleted and created again has a new one, so no write conditional on an
// old reading succeeds. spec.writes grows with every write so that every
// successful update changes the object, and so its resourceVersion, as
// every etcd put changes a key's revision (the API server does not
// store an update that changes nothing). Hold stamps (ipam.Allocation.
// Published) are compared for equality only, so they are a hash of the
// resourceVersion, which stays opaque.

// stickyKind is the kind of the records; they carry NetworkLabel as
// blocks do.
const stickyKind = "IPAMSticky"

var stickiesGVR = schema.GroupVersionResource{Group: Group, Version: Version, Resource: "ipamstickies"}

// stickyRecord is what an IPAMSticky says.
type stickyRecord struct {
	Node  string
	IPs   []netip.Addr
	Hold  bool
	Until time.Time
}

// stickyKV is a record with the object version it was read at.
type stickyKV struct {
	rec    stickyRecord
	rv     string
	uid    types.UID
	writes int64
}

// stamp is the hold stamp of the version read.
func (kv *stickyKV) stamp() int64 { return stampOf(kv.rv) }

// stampOf maps a resourceVersion to a hold stamp: never 0 (no stamp),
// equal for equal versions.
func stampOf(rv string) int64 {
	h := fnv.New64a()
	h.Write([]byte(rv))
	s := int64(h.Sum64() & math.MaxInt64)
	if s == 0 {
		s = 1
	}
	return s
}

// StickyName is the object name of workload's record on ifname in
// network: the network's object name and a hash of the workload and
// interface (workload names hold characters object names cannot).
func StickyName(network, workload, ifname string) string {
	sum := sha256.Sum256([]byte(workload + "\x00" + ifname))
	return NetworkName(network) + "." + hex.EncodeToString(sum[:10])
}

// stickyID names a record for the sync's maps.
type stickyID struct{ workload, ifname string }

func (s *Source) stickyObject(id stickyID, rec stickyRecord, prev *stickyKV) *unstructured.Unstructured {
	ips := make([]any, len(rec.IPs))
	for i, ip := range rec.IPs {
		ips[i] = ip.String()
	}
	state := "live"
	spec := map[string]any{"network": s.net.Name, "workload": id.workload, "ifname": id.ifname, "node": rec.Node, "ips": ips}
	if rec.Hold {
		state = "held"
		spec["until"] = rec.Until.UTC().Format(time.RFC3339Nano)
	}
	spec["state"] = state
	writes := int64(1)
	if prev != nil {
		writes = prev.writes + 1
	}
	spec["writes"] = writes
	o := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": Group + "/" + Version,
		"kind":       stickyKind,
		"metadata": map[string]any{
			"name":   StickyName(s.net.Name, id.workload, id.ifname),
			"labels": map[string]any{NetworkLabel: NetworkName(s.net.Name)},
		},
		"spec": spec,
	}}
	if prev != nil {
		o.SetResourceVersion(prev.rv)
	}
	return o
}

// stickyFrom reads an IPAMSticky object.
func stickyFrom(o *unstructured.Unstructured) (network string, id stickyID, kv *stickyKV, err error) {
	spec, _, _ := unstructured.NestedMap(o.Object, "spec")
	str := func(k string) string { v, _ := spec[k].(string); return v }
	network, id = str("network"), stickyID{str("workload"), str("ifname")}
	kv = &stickyKV{rv: o.GetResourceVersion(), uid: o.GetUID()}
	kv.writes, _, _ = unstructured.NestedInt64(o.Object, "spec", "writes")
	kv.rec.Node, kv.rec.Hold = str("node"), str("state") == "held"
	ips, _, _ := unstructured.NestedStringSlice(o.Object, "spec", "ips")
	for _, v := range ips {
		ip, err := netip.ParseAddr(v)
		if err != nil {
			return network, id, nil, fmt.Errorf("IPAMSticky %s: spec.ips %q: %w", o.GetName(), v, err)
		}
		kv.rec.IPs = append(kv.rec.IPs, ip)
	}
	if u := str("until"); u != "" {
		if kv.rec.Until, err = time.Parse(time.RFC3339Nano, u); err != nil {
			return network, id, nil, fmt.Errorf("IPAMSticky %s: spec.until %q: %w", o.GetName(), u, err)
		}
	}
	return network, id, kv, nil
}

var _ ipam.StickySource = (*Source)(nil)

// readRecord returns the record of id (nil when absent) and the stamp of
// the version of the API it was read at: one list by name, whose
// resourceVersion says when an absent record was absent (a get's 404
// says nothing of when).
func (s *Source) readRecord(ctx context.Context, id stickyID) (*stickyKV, int64, error) {
	ctx, cancel := s.c.bound(ctx)
	defer cancel()
	name := StickyName(s.net.Name, id.workload, id.ifname)
	l, err := s.c.dyn.Resource(stickiesGVR).List(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + name})
	if err = s.c.wrap("read IPAMSticky "+name, err); err != nil {
		return nil, 0, err
	}
	seen := stampOf(l.GetResourceVersion())
	if len(l.Items) == 0 {
		return nil, seen, nil
	}
	_, got, kv, err := stickyFrom(&l.Items[0])
	if err != nil {
		return nil, 0, err
	}
	if got != id {
		return nil, 0, fmt.Errorf("IPAMSticky %s records workload %q on %q, not %q on %q (a hash collision): delete it if neither runs: %w",
			name, got.workload, got.ifname, id.workload, id.ifname, ErrConfig)
	}
	return kv, seen, nil
}

// swap writes rec as id's record (deletes it when rec is nil) if the
// object is still as cur was read (absent when cur is nil). It returns
// the version written (nil when it did not write, or deleted).
func (s *Source) swap(ctx context.Context, op string, id stickyID, cur *stickyKV, rec *stickyRecord) (bool, *stickyKV, error) {
	ctx, cancel := s.c.bound(ctx)
	defer cancel()
	res := s.c.dyn.Resource(stickiesGVR)
	name := StickyName(s.net.Name, id.workload, id.ifname)
	var o *unstructured.Unstructured
	var err error
	switch {
	case rec == nil && cur == nil:
		return true, nil, nil
	case rec == nil:
		pre := metav1.Preconditions{ResourceVersion: &cur.rv}
		if cur.uid != "" {
			pre.UID = &cur.uid
		}
		err = res.Delete(ctx, name, metav1.DeleteOptions{Preconditions: &pre})
	case cur == nil:
		o, err = res.Create(ctx, s.stickyObject(id, *rec, nil), metav1.CreateOptions{})
	default:
		o, err = res.Update(ctx, s.stickyObject(id, *rec, cur), metav1.UpdateOptions{})
	}
	err = s.c.wrap(fmt.Sprintf("%s (IPAMSticky %s)", op, name), err)
	switch {
	case apierrors.IsAlreadyExists(err), apierrors.IsConflict(err), apierrors.IsNotFound(err):
		return false, nil, nil
	case err != nil:
		return false, nil, err
	case o == nil:
		return true, nil, nil
	}
	_, _, kv, err := stickyFrom(o)
	return err == nil, kv, err
}

// Resume implements ipam.StickySource, as etcdstore's: one conditional
// write of the workload's IPAMSticky decides.
func (s *Source) Resume(ctx context.Context, workload, ifname string, local *ipam.LocalHold, now time.Time) (ipam.Resumed, error) {
	ctx, cancel := s.c.bound(ctx)
	defer cancel()
	id := stickyID{workload, ifname}
	cur, _, err := s.readRecord(ctx, id)
	if err != nil {
		return ipam.Resumed{}, err
	}
	var out ipam.Resumed
	switch {
	case local != nil && (cur == nil && local.Own || cur != nil && cur.rec.Node == s.node && slices.Equal(cur.rec.IPs, local.IPs)):
		out = ipam.Resumed{IPs: local.IPs, Until: local.Until, Published: local.Published}
	case cur != nil && cur.rec.Node != s.node && cur.rec.Hold && now.Before(cur.rec.Until) && len(cur.rec.IPs) > 0:
		out = ipam.Resumed{IPs: cur.rec.IPs, Moved: true, Until: cur.rec.Until}
	default:
		return ipam.Resumed{}, nil
	}
	live := stickyRecord{Node: s.node, IPs: out.IPs}
	ok, wrote, err := s.swap(ctx, fmt.Sprintf("record workload %q live on node %q with %v", workload, s.node, out.IPs), id, cur, &live)
	if err != nil || !ok {
		return ipam.Resumed{}, err
	}
	out.Undo = func(ctx context.Context) error {
		var prev *stickyRecord
		if cur != nil {
			prev = &cur.rec
		}
		_, _, err := s.swap(ctx, fmt.Sprintf("undo workload %q's record live on node %q", workload, s.node), id, wrote, prev)
		return err
	}
	return out, nil
}

// PublishHold implements ipam.StickySource.
func (s *Source) PublishHold(ctx context.Context, h ipam.Allocation, now time.Time) error {
	if s.st == nil {
		return nil
	}
	cur, seen, err := s.readRecord(ctx, stickyID{h.Workload, h.IfName})
	if err != nil {
		return err
	}
	own, err := s.ownAddrs(ctx, h.IPs)
	if err != nil {
		return err
	}
	return s.settleHold(ctx, s.st, h, own, cur, seen, now)
}

// ownAddrs reports, per address, whether it lies in a usable block this
// node claims (not a bound address).
func (s *Source) ownAddrs(ctx context.Context, ips []netip.Addr) ([]bool, error) {
	var own []bool
	err := s.st.View(ctx, func(tx ipam.Tx) error {
		var err error
		own, err = ipam.OwnAddrs(tx, s.net.Name, ips)
		return err
	})
	return own, err
}

// settleHold brings this node's hold h in line with its workload's record
// cur (nil: none), read at stamp seen: moved away, stale, expired, or to
// be published as held here. It is etcdstore's settleHold step for step;
// the comments there say why each step is there.
func (s *Source) settleHold(ctx context.Context, st ipam.Store, h ipam.Allocation, own []bool, cur *stickyKV, seen int64, now time.Time) error {
	id := stickyID{h.Workload, h.IfName}
	allOwn := !slices.Contains(own, false)
	switch {
	case cur != nil && cur.rec.Node != s.node:
		return s.movedAway(ctx, st, h, cur.rec.Node, now)
	case cur != nil && !slices.Equal(cur.rec.IPs, h.IPs):
		return dropHold(ctx, st, h) // the record binds other addresses here: a stale hold
	case cur == nil && !allOwn:
		return dropHold(ctx, st, h) // bound addresses nothing binds here any more
	case !now.Before(h.HeldUntil):
		if cur == nil || !cur.rec.Hold {
			// Absent (a publication may be on its way) or live here (an
			// ADD may have taken this hold back since the store was
			// read): record the hold first, stamped and compared like
			// any publication, then expire that (simulator seeds
			// 872545639 and 2100001491 on the etcd source).
			rev := seen
			if cur != nil {
				rev = cur.stamp()
			}
			if ok, err := stampHold(ctx, st, h, rev); err != nil || !ok {
				return err
			}
			h.Published = rev
			held := stickyRecord{Node: s.node, IPs: h.IPs, Hold: true, Until: h.HeldUntil.UTC()}
			ok, wrote, err := s.swap(ctx, fmt.Sprintf("record workload %q's expired hold on node %q", h.Workload, s.node), id, cur, &held)
			if err != nil || !ok {
				return err
			}
			cur = wrote
		}
		ok, _, err := s.swap(ctx, fmt.Sprintf("expire workload %q's hold on node %q", h.Workload, s.node), id, cur, nil)
		if err != nil || !ok {
			return err
		}
		return dropHold(ctx, st, h)
	case cur != nil && cur.rec.Hold && cur.rec.Until.Equal(h.HeldUntil):
		return nil // published already
	}
	rev := seen
	if cur != nil {
		rev = cur.stamp()
	}
	if ok, err := stampHold(ctx, st, h, rev); err != nil || !ok {
		return err
	}
	held := stickyRecord{Node: s.node, IPs: h.IPs, Hold: true, Until: h.HeldUntil.UTC()}
	ok, wrote, err := s.swap(ctx, fmt.Sprintf("record workload %q held on node %q until %s", h.Workload, s.node, held.Until.Format(time.RFC3339)), id, cur, &held)
	if err != nil || !ok || cur != nil {
		return err
	}
	// Created over an absent record, which cannot tell "never written"
	// from "written and deleted since" (a sync may have expired this
	// very hold meanwhile): look again, and a hold gone or changed
	// takes its record with it (simulator seed 1200002751).
	h.Published = rev
	still := false
	if err := st.View(ctx, func(tx ipam.Tx) error {
		var err error
		still, err = sameHold(tx, h)
		return err
	}); err != nil || still {
		return err
	}
	_, _, err = s.swap(ctx, fmt.Sprintf("withdraw workload %q's record held on node %q: the hold went meanwhile", h.Workload, s.node), id, wrote, nil)
	return err
}

// sameHold reports whether the store's hold at h.Key is still h.
func sameHold(tx ipam.Tx, h ipam.Allocation) (bool, error) {
	cur, ok, err := tx.Allocation(h.Key)
	if err != nil || !ok {
		return false, err
	}
	return slices.Equal(cur.IPs, h.IPs) && cur.HeldUntil.Equal(h.HeldUntil) && cur.Published == h.Published, nil
}

// stampHold sets h's Published to rev if h is unchanged in the store.
func stampHold(ctx context.Context, st ipam.Store, h ipam.Allocation, rev int64) (bool, error) {
	ok := false
	err := st.Update(ctx, func(tx ipam.Tx) error {
		var err error
		if ok, err = sameHold(tx, h); err != nil || !ok {
			return err
		}
		h.Published = rev
		return tx.PutAllocation(h)
	})
	return ok, err
}

// dropHold frees hold h if it is unchanged in the store.
func dropHold(ctx context.Context, st ipam.Store, h ipam.Allocation) error {
	return st.Update(ctx, func(tx ipam.Tx) error {
		if ok, err := sameHold(tx, h); err != nil || !ok {
			return err
		}
		return ipam.ReleaseTx(tx, h.Key)
	})
}

// movedAway replaces hold h, whose workload's record binds it to node
// to: its addresses in this node's blocks stay reserved for that node
// (moved reservations) until no record binds them elsewhere; its bound
// addresses leave this node.
func (s *Source) movedAway(ctx context.Context, st ipam.Store, h ipam.Allocation, to string, now time.Time) error {
	return st.Update(ctx, func(tx ipam.Tx) error {
		if ok, err := sameHold(tx, h); err != nil || !ok {
			return err
		}
		if err := tx.DeleteAllocation(h.Key); err != nil {
			return err
		}
		for _, ip := range h.IPs {
			b, ok, err := tx.BlockContaining(s.net.Name, ip)
			switch {
			case err != nil:
				return err
			case !ok:
			case b.IsBound():
				if err := tx.DeleteBlock(s.net.Name, b.Prefix); err != nil {
					return err
				}
			default:
				m := ipam.Allocation{Key: ipam.MovedKey(s.net.Name, to, ip), IPs: []netip.Addr{ip}, Created: now.UTC(), Workload: h.Workload}
				if err := tx.PutAllocation(m); err != nil {
					return err
				}
			}
		}
		return nil
	})
}
