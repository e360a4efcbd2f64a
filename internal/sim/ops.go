package sim

import (
	"context"
	"fmt"
	"time"

	"github.com/medianet/medianet/ipam"
)

// aborter is the rollback of a failed ADD where the allocator has it
// (issue 18); without it the CNI plugin rolls back with Release.
type aborter interface {
	Abort(ctx context.Context, containerID, ifname string) error
}

// session is what one CNI process (or agent pass) of node n builds: the
// allocator and block source (and its sync) over the node's store, with
// n's current configuration.
func (w *World) session(o *op) (*ipam.Allocator, syncFunc, ipam.Store, error) {
	cfg := o.node.cfg
	st := &simStore{inner: o.node.bolt, o: o}
	src, sync, err := w.be.source(&cfg, st)
	if err != nil {
		return nil, nil, nil, err
	}
	al, err := ipam.NewAllocator(cfg, st, src)
	if err != nil {
		return nil, nil, nil, err
	}
	al.Now = func() time.Time { return w.now }
	return al, sync, st, nil
}

// startOp starts the operation s asks for, on a live node.
func (w *World) startOp(s Step) {
	if _, dup := w.ops[s.Op]; dup {
		return
	}
	n := w.node(s.Node)
	if n == nil {
		return
	}
	if s.Kind == "reclaim" {
		if n.dead {
			w.start(s, nil, func(o *op) error { return w.reclaim(o, n) }, nil)
		}
		return
	}
	if n.dead {
		return
	}
	switch s.Kind {
	case "add":
		if c := n.known[s.CID]; c != nil && c.state != "failed" {
			return // the runtime does not ADD a container twice
		}
		n.known[s.CID] = &container{workload: s.Workload, state: "adding"}
		w.start(s, n, w.add, func(o *op) {
			c := n.known[s.CID]
			if o.err == nil && !o.killed && !s.Fail {
				c.state = "live"
			} else {
				c.state = "failed" // the runtime owes it a DEL
			}
		})
	case "del":
		c := n.known[s.CID]
		if c == nil || c.state == "adding" || c.state == "deleting" {
			return
		}
		c.state = "deleting"
		w.start(s, n, w.del, func(o *op) {
			if o.err == nil && !o.killed {
				delete(n.known, s.CID)
			} else {
				c.state = "failed"
			}
		})
	case "gc":
		var valid []ipam.Attachment
		for _, cid := range sortedKeys(n.known) {
			if st := n.known[cid].state; st == "live" || st == "adding" {
				valid = append(valid, ipam.Attachment{ContainerID: cid, IfName: ifname})
			}
		}
		w.start(s, n, func(o *op) error { return w.gc(o, valid) }, nil)
	case "status":
		w.start(s, n, w.status, nil)
	case "check":
		w.start(s, n, w.check, nil)
	case "sync":
		w.start(s, n, w.sync, nil)
	case "release":
		w.start(s, n, w.release, nil)
	}
}

func (w *World) add(o *op) error {
	al, _, _, err := w.session(o)
	if err != nil {
		return err
	}
	s := o.step
	if _, err := al.Allocate(o.ctx, ipam.Request{ContainerID: s.CID, IfName: ifname, Workload: s.Workload}); err != nil || !s.Fail {
		return err
	}
	// The plugin failed after IPAM ADD (the link could not be made): it
	// rolls back before it reports the failure.
	if ab, ok := any(al).(aborter); ok {
		return ab.Abort(o.ctx, s.CID, ifname)
	}
	_, _, err = al.Release(o.ctx, s.CID, ifname)
	return err
}

func (w *World) del(o *op) error {
	al, _, _, err := w.session(o)
	if err != nil {
		return err
	}
	_, _, err = al.Release(o.ctx, o.step.CID, ifname)
	return err
}

// gc is CNI GC as the plugin's Collect runs it: the allocator's GC, then
// the source's sync.
func (w *World) gc(o *op, valid []ipam.Attachment) error {
	al, sync, st, err := w.session(o)
	if err != nil {
		return err
	}
	if _, err := al.GC(o.ctx, valid); err != nil {
		return err
	}
	return sync(o.ctx, st, w.now)
}

func (w *World) status(o *op) error {
	al, _, _, err := w.session(o)
	if err != nil {
		return err
	}
	return al.Status(o.ctx)
}

// check is `medianetctl ipam check CONFIG`: the store's consistency and
// findings; corruption is a violation.
func (w *World) check(o *op) error {
	al, _, st, err := w.session(o)
	if err != nil {
		return err
	}
	if _, err := ipam.Check(o.ctx, st); err != nil {
		w.violate("check-corrupt", fmt.Sprintf("op %d (%s): %v", o.id, o.step, err))
		return err
	}
	_, err = al.Check(o.ctx)
	return err
}

// sync is the node agent's pass (the source's SyncIdle).
func (w *World) sync(o *op) error {
	_, sync, st, err := w.session(o)
	if err != nil {
		return err
	}
	return sync(o.ctx, st, w.now)
}

// reclaim is `medianetctl ipam reclaim` (--node NAME [--force], or
// --gone) for a node lost for good.
func (w *World) reclaim(o *op, n *node) error {
	done, err := w.be.reclaim(o.ctx, n.name, o.step)
	if done {
		n.reclaimed = true
	}
	return err
}

// release is `medianetctl ipam release --container CID` on a node: the
// operator's step that ends the foreign reservations a forced reclaim
// left for a node known to be gone (docs/ipam-etcd.md). Holds are not
// released this way (the command expires them), so neither are they here.
func (w *World) release(o *op) error {
	_, _, st, err := w.session(o)
	if err != nil {
		return err
	}
	allocs, err := ipam.List(o.ctx, st, Network)
	if err != nil {
		return err
	}
	for _, a := range allocs {
		if a.ContainerID != o.step.CID || a.IsHold() {
			continue
		}
		if _, _, err := ipam.Release(o.ctx, st, a.Key); err != nil {
			return err
		}
	}
	return nil
}

// apply runs one step.
func (w *World) apply(s Step) {
	w.steps++
	w.noop = append(w.noop, false)
	switch {
	case opKinds[s.Kind]:
		w.startOp(s)
		w.noop[len(w.noop)-1] = w.ops[s.Op] == nil || w.ops[s.Op].step != s
	case s.Kind == "run" || s.Kind == "kill":
		if o := w.ops[s.Op]; o != nil && !o.done && (s.Kind == "kill" || o.runnable()) {
			w.advance(o, s.Kind == "run")
		} else {
			w.noop[len(w.noop)-1] = true
		}
	case s.Kind == "clock":
		w.now = w.now.Add(s.Dur)
	case s.Kind == "cfg":
		for _, n := range w.targets(s.Node) {
			if err := applyCfg(n, s.Cfg); err != nil {
				w.violate("sim", err.Error())
			}
		}
	case s.Kind == "down" || s.Kind == "up":
		if s.Node < 0 {
			w.downAll = s.Kind == "down"
			for _, n := range w.nodes {
				n.down = false
			}
		} else if n := w.node(s.Node); n != nil {
			n.down = s.Kind == "down"
		}
	case s.Kind == "lose":
		w.lose(w.node(s.Node))
	case s.Kind == "drain":
		w.drain()
	}
}

func (w *World) targets(i int) []*node {
	if i < 0 {
		return w.nodes
	}
	if n := w.node(i); n != nil {
		return []*node{n}
	}
	return nil
}

// lose kills every operation of n: the node is gone for good, its
// containers with it (and, in the Kubernetes API, its Node object).
func (w *World) lose(n *node) {
	if n == nil || n.dead {
		return
	}
	for _, id := range w.opIDs() {
		if o := w.ops[id]; o.node == n && !o.done {
			w.advance(o, false)
		}
	}
	n.dead = true
	n.known = map[string]*container{}
	w.snap = nil
	if err := w.be.lose(n.name); err != nil {
		w.violate("sim", fmt.Sprintf("lose %s: %v", n.name, err))
	}
}
