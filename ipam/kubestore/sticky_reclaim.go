package kubestore

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// nodeSticky is a record naming a node being reclaimed.
type nodeSticky struct {
	name string
	kv   *stickyKV
}

// nodeStickies lists the IPAMSticky objects naming one of nodes as where
// their workload runs or is held, in network (every network when empty).
func (c *Client) nodeStickies(ctx context.Context, network string, nodes map[string]bool) ([]nodeSticky, error) {
	opts := metav1.ListOptions{}
	if network != "" {
		opts.LabelSelector = NetworkLabel + "=" + NetworkName(network)
	}
	l, err := c.dyn.Resource(stickiesGVR).List(ctx, opts)
	if err = c.wrap(fmt.Sprintf("list IPAMStickies of network %q", network), err); err != nil {
		return nil, err
	}
	var out []nodeSticky
	for i := range l.Items {
		net, _, kv, err := stickyFrom(&l.Items[i])
		if err != nil || (network != "" && net != network) || !nodes[kv.rec.Node] {
			continue
		}
		out = append(out, nodeSticky{name: l.Items[i].GetName(), kv: kv})
	}
	return out, nil
}

// liveStickies returns the names of the records saying a workload runs
// on the node (a reclaim without force refuses them, as live blocks).
func liveStickies(recs []nodeSticky) []string {
	var out []string
	for _, r := range recs {
		if !r.kv.rec.Hold {
			out = append(out, r.name)
		}
	}
	return out
}

// freeStickies deletes the reclaimed node's records that a reclaim
// frees, as etcdstore's freeRecords: all with force (the node is gone:
// its workloads run nowhere, and the addresses its holds kept go back to
// their blocks), else the holds whose time is up (a hold still running
// stays: the workload may start on another node and take it). Each
// delete carries the version read, so a record changed meanwhile stays.
func (c *Client) freeStickies(ctx context.Context, recs []nodeSticky, force, dryRun bool, now time.Time, res *ReclaimResult) error {
	for _, r := range recs {
		if !force && (!r.kv.rec.Hold || now.Before(r.kv.rec.Until)) {
			continue
		}
		if !dryRun {
			pre := metav1.Preconditions{ResourceVersion: &r.kv.rv}
			if r.kv.uid != "" {
				pre.UID = &r.kv.uid
			}
			err := c.dyn.Resource(stickiesGVR).Delete(ctx, r.name, metav1.DeleteOptions{Preconditions: &pre})
			err = c.wrap("delete IPAMSticky "+r.name, err)
			if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
				continue
			}
			if err != nil {
				return err
			}
		}
		res.Records = append(res.Records, r.name)
	}
	return nil
}

// reclaimGoneStickies deletes every record naming a node whose blocks
// ReclaimGone frees and of whose name no Node object exists any more (a
// Node registered again under the name may be the one its records
// name; a record it does not back is rolled forward by its own sync and
// expires there).
func (c *Client) reclaimGoneStickies(ctx context.Context, network string, gone []Block, nodes []unstructured.Unstructured, dryRun bool, res *ReclaimResult) error {
	named := map[string]bool{}
	for _, n := range nodes {
		named[n.GetName()] = true
	}
	dead := map[string]bool{}
	for _, b := range gone {
		if !named[b.Node] {
			dead[b.Node] = true
		}
	}
	if len(dead) == 0 {
		return nil
	}
	recs, err := c.nodeStickies(ctx, network, dead)
	if err != nil {
		return err
	}
	return c.freeStickies(ctx, recs, true, dryRun, c.now(), res)
}
