package scale

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"
)

// Leader-loss timing: churn runs leaderPre before the kill and leaderPost
// after it; a node joins (its first ADD claims a block) every joinEvery.
const (
	leaderPre  = 3 * time.Second
	leaderPost = 10 * time.Second
	joinEvery  = 100 * time.Millisecond
)

// leaderLoss kills the etcd leader (SIGKILL) in the middle of churn while
// new nodes keep joining, and measures the ADDs that failed and how long
// claims took to work again; then the member restarts and rejoins.
func (s *sim) leaderLoss() phase {
	st, joins := &stats{}, &stats{}
	before, start := s.etcdSnapshot(), time.Now()
	until := start.Add(leaderPre + leaderPost)
	var churnErr error
	var wg sync.WaitGroup
	stop := s.startAgents(st)
	wg.Go(func() { churnErr = s.churnUntil(until, st) })
	joinErrs := s.joinUntil(until, joins, &wg)
	time.Sleep(leaderPre)
	leader, term := s.leader()
	kill := time.Now()
	s.etcd.Members[leader].Kill()
	elected, newTerm := s.awaitLeader(leader, kill)
	wg.Wait()
	stop()
	if churnErr != nil {
		s.t.Fatalf("leader loss: churn: %v", churnErr)
	}
	if err := <-joinErrs; err != nil {
		s.t.Fatalf("leader loss: a joining node never got an address: %v", err)
	}
	restart := time.Now()
	s.etcd.Members[leader].Restart()
	rejoin := time.Since(restart)
	ph := s.finish("leader loss", start, st, before)
	js := joins.snapshot()
	ph.sum = summarize(append(st.snapshot(), js...))
	ph.facts = append(ph.facts,
		fmt.Sprintf("leader m%d (term %d) killed %s into the phase; m%d elected (term %d) %s after the kill; killed member back in %s",
			leader, term, ms(kill.Sub(start)), elected.idx, newTerm, ms(elected.after), ms(rejoin)),
		churnFact(st.snapshot(), kill),
		claimFact(js, kill),
		agentFact(ph.sum, s.agents, ph.wall))
	return ph
}

// leader returns the current leader, asking again for up to 30 s (a
// loaded machine may answer slowly).
func (s *sim) leader() (int, uint64) {
	var err error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		var idx int
		var term uint64
		if idx, term, err = s.etcd.Leader(context.Background()); err == nil {
			return idx, term
		}
	}
	s.t.Fatalf("leader loss: %v", err)
	return -1, 0
}

type election struct {
	idx   int
	after time.Duration
}

// awaitLeader polls the surviving members until one reports a leader
// other than dead.
func (s *sim) awaitLeader(dead int, kill time.Time) (election, uint64) {
	for time.Since(kill) < time.Minute {
		idx, term, err := s.etcd.Leader(context.Background())
		if err == nil && idx != dead {
			return election{idx, time.Since(kill)}, term
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.t.Fatalf("leader loss: no new leader within a minute of killing m%d", dead)
	return election{}, 0
}

// joinUntil makes a new node join every joinEvery until until; each
// starts one pod (a claim), retrying as a kubelet does for up to a
// minute. The channel yields the first join that failed for good (or
// nil) once every join has ended; wg covers the joins.
func (s *sim) joinUntil(until time.Time, st *stats, wg *sync.WaitGroup) <-chan error {
	out := make(chan error, 1)
	var mu sync.Mutex
	var first error
	var joins sync.WaitGroup
	wg.Go(func() {
		for time.Now().Before(until) {
			n := s.addNodes("join", 1)[0]
			joins.Go(func() {
				giveUp, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				if err := s.addPod(giveUp, n, st); err != nil {
					mu.Lock()
					first = cmpOr(first, err)
					mu.Unlock()
				}
			})
			time.Sleep(joinEvery)
		}
		joins.Wait()
		out <- first
	})
	return out
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// churnFact says how the churn's ADDs fared from the kill on.
func churnFact(ops []opRec, kill time.Time) string {
	var after []opRec
	for _, o := range ops {
		if o.kind == opAdd && !o.start.Add(o.took).Before(kill) {
			after = append(after, o)
		}
	}
	s := summarize(after)
	return fmt.Sprintf("churn ADDs from the kill on: %d, %d failed (%.2f %%), p99 %s, max %s, %d of them contacted etcd",
		s.adds+s.addErrs, s.addErrs, 100*float64(s.addErrs)/float64(max(1, s.adds+s.addErrs)), ms(pct(s.add, 99)), ms(maxOf(s.add)), len(s.claim))
}

// claimFact says how claims (joining nodes' first ADDs) fared after the
// kill: attempts, failures, and when the first one started after the kill
// succeeded.
func claimFact(ops []opRec, kill time.Time) string {
	attempts, failed := 0, 0
	recovered := time.Duration(-1)
	var inFlight []time.Duration
	for _, o := range ops {
		end := o.start.Add(o.took)
		if o.start.Before(kill) && end.After(kill) {
			inFlight = append(inFlight, o.took)
		}
		if o.start.Before(kill) {
			continue
		}
		attempts++
		if o.err != nil {
			failed++
		} else if d := end.Sub(kill); recovered < 0 || d < recovered {
			recovered = d
		}
	}
	return fmt.Sprintf("claiming ADDs started after the kill: %d, %d failed with CNI 11 and were retried (%.1f %%); the first to succeed ended %s after the kill; %d claims in flight at the kill took up to %s",
		attempts, failed, 100*float64(failed)/float64(max(1, attempts)), ms(recovered), len(inFlight), ms(maxOf(inFlight)))
}

// nodeDeath: 10 % of the nodes vanish with their pods and data; the real
// medianetctl refuses to reclaim their blocks without --force (they were
// not marked empty), then frees them with it; as many new nodes join and
// fill up, and may get the freed blocks.
func (s *sim) nodeDeath() phase {
	// The dead are 10 % of the run's full nodes (not the nodes that
	// joined with one pod during the leader loss).
	nodes := slices.DeleteFunc(s.live(), func(n *node) bool { return !strings.HasPrefix(n.Name, "node-") })
	rand.Shuffle(len(nodes), func(i, j int) { nodes[i], nodes[j] = nodes[j], nodes[i] })
	dead := nodes[:max(1, s.n/10)]
	s.mu.Lock()
	s.nodes = slices.DeleteFunc(s.nodes, func(n *node) bool { return slices.Contains(dead, n) })
	s.mu.Unlock()
	for _, n := range dead {
		if err := os.RemoveAll(n.Dir); err != nil {
			s.t.Fatal(err)
		}
	}
	before, start := s.etcdSnapshot(), time.Now()
	freed, took := s.reclaim(dead)
	repl := s.addNodes("repl", len(dead))
	ph := s.fill("node death", repl)
	ph.wall, ph.etcd = time.Since(start), diff(before, s.etcdSnapshot())
	reused := 0
	for _, n := range repl {
		bs, err := n.Blocks(context.Background())
		if err != nil {
			s.t.Fatal(err)
		}
		for _, b := range bs {
			if freed[b.Prefix] {
				reused++
			}
		}
	}
	ph.facts = append(ph.facts, fmt.Sprintf("%d nodes vanished holding %d blocks; `medianetctl ipam reclaim` refused each without --force, "+
		"then freed them with it in %s in all (p50 %s, max %s per node); %d replacement nodes filled to %d pods and reused %d of the freed blocks",
		len(dead), len(freed), ms(sum(took)), ms(pct(took, 50)), ms(maxOf(took)), len(repl), s.p.minPods, reused))
	return ph
}

// reclaim runs medianetctl ipam reclaim for each dead node: without
// --force it must refuse (the blocks are not marked empty), with it it
// must free every block, leaving no claim of the node. It returns the
// freed blocks and the time of each forced reclaim.
func (s *sim) reclaim(dead []*node) (map[netip.Prefix]bool, []time.Duration) {
	flags, env := s.ctlFlags()
	freed := map[netip.Prefix]bool{}
	var took []time.Duration
	for _, n := range dead {
		args := append([]string{"ipam", "reclaim", "--node", n.Name, "--network", "media"}, flags...)
		if out, code := ctl(env, args...); code == 0 {
			s.t.Fatalf("reclaim %s without --force: exit 0, want a refusal (its blocks are not marked empty): %s", n.Name, out)
		}
		start := time.Now()
		out, code := ctl(env, append(args, "--force")...)
		took = append(took, time.Since(start))
		if code != 0 {
			s.t.Fatalf("reclaim %s --force: exit %d: %s", n.Name, code, out)
		}
		for _, line := range strings.Split(out, "\n") {
			// "freed media 10.64.3.0/26 (node node-7)"
			if f := strings.Fields(line); len(f) >= 3 && f[0] == "freed" {
				freed[netip.MustParsePrefix(f[2])] = true
			}
		}
		left, err := s.checker.Claims(context.Background(), "media", n.Name)
		if err != nil || len(left) > 0 {
			s.t.Fatalf("after reclaim %s --force: claims left %v, %v", n.Name, left, err)
		}
	}
	return freed, took
}

// ctl runs medianetctl with env added to its environment and returns
// its output and exit code.
func ctl(env []string, args ...string) (string, int) {
	cmd := exec.Command(bin("medianetctl"), args...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil && cmd.ProcessState == nil {
		return err.Error(), -1
	}
	return out.String(), cmd.ProcessState.ExitCode()
}

func sum(ds []time.Duration) time.Duration {
	var t time.Duration
	for _, d := range ds {
		t += d
	}
	return t
}
