package etcdtest

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Cluster is several etcd members on loopback forming one cluster, each a
// Server with its own ports and data directory. Members can be killed and
// restarted one by one (Server.Kill, Server.Restart) while the others keep
// quorum.
type Cluster struct {
	Members []*Server
}

// StartCluster starts a fresh cluster of size members and waits until
// every member answers. With opts.TLS the members share one generated CA
// and server certificate (clients use https, peers talk plain http on
// loopback); with opts.Auth authentication is enabled once for the
// cluster. It skips t when the binary is absent and fails t when a member
// does not come up. Cleanup stops every member.
func StartCluster(t testing.TB, size int, opts Options) *Cluster {
	t.Helper()
	SkipUnlessAvailable(t)
	if size < 1 {
		t.Fatalf("etcdtest: cluster size %d: want at least 1", size)
	}
	opts = opts.withDefaults()
	dir := t.TempDir()
	tlsFiles := generateTLS(t, dir, opts)
	c := &Cluster{}
	var peers []string
	for i := range size {
		m := newServer(t, filepath.Join(dir, fmt.Sprintf("m%d", i)), fmt.Sprintf("m%d", i), opts, tlsFiles)
		c.Members = append(c.Members, m)
		peers = append(peers, m.name+"="+m.peerURL)
		t.Cleanup(m.Stop)
	}
	// Every member must be running before any can answer: a read needs
	// a quorum.
	dones := make([]chan struct{}, size)
	for i, m := range c.Members {
		m.cluster, m.token = strings.Join(peers, ","), "etcdtest-"+c.Members[0].peerURL
		done, err := m.spawn()
		if err != nil {
			t.Fatalf("etcdtest: member %s: %v", m.name, err)
		}
		dones[i] = done
	}
	errs := make([]error, size)
	var wg sync.WaitGroup
	for i, m := range c.Members {
		wg.Go(func() { errs[i] = m.awaitHealthy(dones[i]) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatalf("etcdtest: %v", err)
		}
	}
	if opts.Auth {
		if err := c.Members[0].enableAuth(); err != nil {
			t.Fatalf("etcdtest: enable auth: %v", err)
		}
		for _, m := range c.Members[1:] {
			m.User, m.Password = c.Members[0].User, c.Members[0].Password
		}
	}
	return c
}

// Endpoints returns every member's client URL, as a client of the
// whole cluster is configured.
func (c *Cluster) Endpoints() []string {
	var eps []string
	for _, m := range c.Members {
		eps = append(eps, m.clientURL)
	}
	return eps
}

// Leader returns the index of the leader and its raft term, once a
// running member names it and the leader itself confirms (same leader,
// same term): a member's view just after an election or a restart can be
// stale. It asks again for up to 10 s (or until ctx ends).
func (c *Cluster) Leader(ctx context.Context) (int, uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		idx, term, err := c.confirmedLeader(ctx)
		if err == nil {
			return idx, term, nil
		}
		select {
		case <-ctx.Done():
			return -1, 0, fmt.Errorf("etcdtest: find the leader: %w", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (c *Cluster) confirmedLeader(ctx context.Context) (int, uint64, error) {
	var last error
	for _, m := range c.Members {
		if !m.Running() {
			continue
		}
		idx, term, err := c.leaderSeenBy(ctx, m)
		if err != nil {
			last = err
			continue
		}
		l := c.Members[idx]
		if !l.Running() {
			last = fmt.Errorf("%s names %s, which is not running, leader in term %d", m.name, l.name, term)
			continue
		}
		cidx, cterm, err := c.leaderSeenBy(ctx, l)
		if err == nil && cidx == idx && cterm == term {
			return idx, term, nil
		}
		last = fmt.Errorf("%s names %s leader in term %d; %s says m%d in term %d (%v)", m.name, l.name, term, l.name, cidx, cterm, err)
	}
	if last == nil {
		last = fmt.Errorf("no member is running")
	}
	return -1, 0, last
}

// leaderSeenBy asks m for its status and maps the leader's id to a member.
func (c *Cluster) leaderSeenBy(ctx context.Context, m *Server) (int, uint64, error) {
	cli, err := m.RootClient()
	if err != nil {
		return -1, 0, err
	}
	defer cli.Close()
	// Generous: with authentication every new client logs in (bcrypt).
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := cli.Status(ctx, m.clientURL)
	if err != nil {
		return -1, 0, fmt.Errorf("status of %s: %w", m.name, err)
	}
	if st.Leader == 0 {
		return -1, st.RaftTerm, fmt.Errorf("member %s knows no leader (term %d)", m.name, st.RaftTerm)
	}
	ml, err := cli.MemberList(ctx)
	if err != nil {
		return -1, 0, fmt.Errorf("member list from %s: %w", m.name, err)
	}
	for _, mem := range ml.Members {
		if mem.ID != st.Leader {
			continue
		}
		for i, cm := range c.Members {
			if cm.name == mem.Name {
				return i, st.RaftTerm, nil
			}
		}
	}
	return -1, st.RaftTerm, fmt.Errorf("leader %x reported by %s is not a member", st.Leader, m.name)
}

// Client returns a client of the whole cluster with full rights.
func (c *Cluster) Client() (*clientv3.Client, error) {
	m := c.Members[0]
	tc, err := m.TLSConfig()
	if err != nil {
		return nil, err
	}
	cfg := clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 2 * time.Second, TLS: tc, Logger: zap.NewNop()}
	if m.opts.Auth && m.User != "" {
		cfg.Username, cfg.Password = "root", RootPassword
	}
	return clientv3.New(cfg)
}
