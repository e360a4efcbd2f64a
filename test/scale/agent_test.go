package scale

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/medianet/medianet/ipam/etcdstore"
)

// The node agent's sync timing, as medianetd runs it for the CNI
// networks (agent/sync.go): every syncInterval, and a second
// after a DEL that emptied a block or left a sticky hold (at most once a
// second).
const (
	syncInterval = time.Minute
	kickDelay    = time.Second
)

// startAgents runs a node agent for every live node, recording its syncs
// in st, until the returned stop is called. It mirrors medianetd's
// agent.Syncer.Run: sync, then wait for the timer or a kick (a DEL that
// emptied a block, see delPod) followed by kickDelay. The timers start at random
// phases, as the agents of a real cluster do.
func (s *sim) startAgents(st *stats) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	nodes := s.live()
	s.agents = len(nodes)
	for _, n := range nodes {
		wg.Go(func() { s.agent(ctx, n, st) })
	}
	return func() {
		cancel()
		wg.Wait()
	}
}

func (s *sim) agent(ctx context.Context, n *node, st *stats) {
	first := time.NewTimer(rand.N(syncInterval))
	defer first.Stop()
	t := (*time.Ticker)(nil)
	tick := func() <-chan time.Time {
		if t == nil {
			return nil
		}
		return t.C
	}
	for {
		select {
		case <-ctx.Done():
			if t != nil {
				t.Stop()
			}
			return
		case <-first.C:
			t = time.NewTicker(syncInterval)
		case <-tick():
		case <-n.kick:
			select {
			case <-ctx.Done():
				continue
			case <-time.After(kickDelay):
			}
		}
		start := time.Now()
		_, tr, err := n.Sync(context.Background())
		if errors.Is(err, etcdstore.ErrUnavailable) {
			err = nil // the agent logs it and syncs again later
		}
		st.record(opSync, start, time.Since(start), tr, err)
	}
}
