package sim

import (
	"context"
	"fmt"
	"runtime/debug"

	"github.com/medianet/medianet/ipam"
)

// opKey carries the operation in the context of its calls, for the
// source's hook.
type opKey struct{}

// killed is the panic that stops an operation at a yield point: its
// process died there.
type killed struct{}

// op is one operation: a goroutine that runs only when the scheduler
// resumes it, and parks at every yield point.
type op struct {
	id     int
	step   Step
	node   *node // nil for the operator's reclaim
	w      *World
	ctx    context.Context
	resume chan bool // scheduler -> op: go on (true) or die (false)
	park   chan struct{}
	// blocked, when set, says the op waits for something (the claim
	// lock): the scheduler does not pick it while it returns true.
	blocked func() bool
	inTx    bool
	where   string
	done    bool
	killed  bool
	err     error
}

// yield parks the operation until the scheduler moves it on; a kill
// unwinds it from here.
func (o *op) yield(where string) {
	if o.inTx {
		o.w.violate("yield-in-tx", fmt.Sprintf("op %d (%s) reached %q inside a store transaction: a network call or wait under the store lock", o.id, o.step, where))
		return
	}
	o.where = where
	o.park <- struct{}{}
	if !<-o.resume {
		panic(killed{})
	}
}

// start runs body in a new operation's goroutine up to its first yield
// point (or its end).
func (w *World) start(s Step, n *node, body func(o *op) error, after func(o *op)) {
	o := &op{id: s.Op, step: s, node: n, w: w, resume: make(chan bool), park: make(chan struct{})}
	o.ctx = context.WithValue(context.Background(), opKey{}, o)
	w.ops[o.id] = o
	go func() {
		defer func() {
			if r := recover(); r != nil {
				if _, ok := r.(killed); ok {
					o.killed = true
				} else {
					w.violate("panic", fmt.Sprintf("op %d (%s) panicked: %v\n%s", o.id, s, r, debug.Stack()))
				}
			}
			if after != nil {
				after(o)
			}
			o.done = true
			o.park <- struct{}{}
		}()
		o.yield("start")
		o.err = body(o)
	}()
	<-o.park // parked at "start"
	w.advance(o, true)
}

// runnable reports whether the scheduler may move o.
func (o *op) runnable() bool { return !o.done && (o.blocked == nil || !o.blocked()) }

// advance moves o to its next yield point or its end (or kills it). A
// STATUS operation's steps must leave the source's records as they were.
func (w *World) advance(o *op, goOn bool) {
	var before string
	if o.step.Kind == "status" && goOn {
		before = w.be.stamp()
	}
	o.resume <- goOn
	<-o.park
	if o.step.Kind == "status" && goOn {
		if now := w.be.stamp(); now != before && before != "" {
			w.violate("status-wrote", fmt.Sprintf("op %d (%s) changed %s (%s to %s) at %q", o.id, o.step, w.be.name(), before, now, o.where))
		}
	}
}

// simStore is a node's store as one operation sees it: every transaction
// is preceded by a yield point, and the claim lock is waited for by
// parking.
type simStore struct {
	inner ipam.Store
	o     *op
}

var (
	_ ipam.Store       = (*simStore)(nil)
	_ ipam.ClaimLocker = (*simStore)(nil)
)

func (s *simStore) Update(ctx context.Context, fn func(ipam.Tx) error) error {
	s.o.yield("store update")
	if s.o.step.Kind == "status" {
		s.o.w.violate("status-wrote", fmt.Sprintf("op %d (%s) wrote to node %s's store", s.o.id, s.o.step, s.o.node.name))
	}
	s.o.inTx = true
	defer func() { s.o.inTx = false }()
	err := s.inner.Update(ctx, fn)
	s.o.node.storeGen++
	return err
}

func (s *simStore) View(ctx context.Context, fn func(ipam.Tx) error) error {
	s.o.yield("store view")
	s.o.inTx = true
	defer func() { s.o.inTx = false }()
	return s.inner.View(ctx, fn)
}

func (s *simStore) Close() error { return nil }

// ClaimLock waits (parked) while another operation of the node holds the
// node's claim lock, then takes the real one, which is then free.
func (s *simStore) ClaimLock(ctx context.Context, network string) (func(), error) {
	n := s.o.node
	s.o.yield("claim lock")
	s.o.blocked = func() bool { return n.claimBusy }
	for n.claimBusy {
		s.o.yield("claim lock wait")
	}
	s.o.blocked = nil
	unlock, err := s.inner.(ipam.ClaimLocker).ClaimLock(ctx, network)
	if err != nil {
		return nil, err
	}
	n.claimBusy = true
	return func() { unlock(); n.claimBusy = false }, nil
}
