package soak

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/medianet/medianet/ipam"
	"github.com/medianet/medianet/ipam/boltstore"
	"github.com/medianet/medianet/ipam/etcdstore"
)

// nodeState is what one node's store holds and what `medianetctl ipam
// check` said of it.
type nodeState struct {
	name     string
	allocs   map[string][]ipam.Allocation // by network
	blocks   map[string][]ipam.Block      // by network
	findings []ipam.Finding
	checked  bool // findings were read (check exited 0 or 3)
}

// clusterState is the whole cluster at one quiescent point.
type clusterState struct {
	nodes      []nodeState
	claims     []etcdstore.BlockClaim // of the etcd network
	claimsRead bool                   // etcd answered
}

// readNode reads a node's store as medianetctl would, from outside.
func readNode(ctx context.Context, n *node) (nodeState, error) {
	ns := nodeState{name: n.name, allocs: map[string][]ipam.Allocation{}, blocks: map[string][]ipam.Block{}}
	st, err := boltstore.Open(ctx, n.dir, boltstore.Options{Timeout: 30 * time.Second})
	if err != nil {
		return ns, fmt.Errorf("node %s: open store: %w", n.name, err)
	}
	defer st.Close()
	for _, net := range netNames {
		if ns.allocs[net], err = ipam.List(ctx, st, net); err != nil {
			return ns, fmt.Errorf("node %s: list %s: %w", n.name, net, err)
		}
	}
	err = st.View(ctx, func(tx ipam.Tx) error {
		for _, net := range netNames {
			err := tx.ForEachBlock(net, func(b ipam.Block) error {
				ns.blocks[net] = append(ns.blocks[net], b)
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return ns, fmt.Errorf("node %s: read blocks: %w", n.name, err)
	}
	return ns, nil
}

// checkReport is `medianetctl ipam check --json`.
type checkReport struct {
	Consistent bool           `json:"consistent"`
	Findings   []ipam.Finding `json:"findings"`
}

// check runs `medianetctl ipam check --json` with the node's current
// configuration files: exit 0 (nothing to act on) or 3 (findings), never
// 1 (corrupt store, or a failure).
func (s *soak) check(n *node) ([]ipam.Finding, error) {
	args := append([]string{"--data-dir", n.dir, "ipam", "check", "--json"}, n.confFiles()...)
	cmd := exec.Command(s.bin("medianetctl"), args...)
	out, err := cmd.Output()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee) && ee.ExitCode() == 3:
	case err != nil:
		stderr := ""
		if ee != nil {
			stderr = string(ee.Stderr)
		}
		return nil, fmt.Errorf("node %s: medianetctl ipam check: %v: %s%s", n.name, err, out, stderr)
	}
	var r checkReport
	if err := json.Unmarshal(out, &r); err != nil || !r.Consistent {
		return nil, fmt.Errorf("node %s: medianetctl ipam check --json: consistent %t, %v: %s", n.name, r.Consistent, err, out)
	}
	return r.Findings, nil
}

// readState reads every node's store and check, and etcd's claims when
// etcd is meant to answer. The errors are invariant violations: a check
// exiting 1, a store that cannot be read.
func (s *soak) readState() (*clusterState, []string) {
	ctx := context.Background()
	cs := &clusterState{}
	var bad []string
	for _, n := range s.nodes {
		ns, err := readNode(ctx, n)
		if err != nil {
			bad = append(bad, err.Error())
		}
		if ns.findings, err = s.check(n); err != nil {
			bad = append(bad, err.Error())
		} else {
			ns.checked = true
		}
		cs.nodes = append(cs.nodes, ns)
	}
	if s.faults.etcdAnswers() {
		claims, err := s.cli.Claims(ctx, etcdNet, "")
		if err != nil {
			s.logf("read claims from etcd (meant to answer): %v", err)
		} else {
			cs.claims, cs.claimsRead = claims, true
		}
	}
	return cs, bad
}

// storeDigest is a hash of the node's store file, and etcd's revision:
// STATUS must change neither.
func (s *soak) storeDigest(n *node) (sum [32]byte, rev int64, err error) {
	b, err := os.ReadFile(filepath.Join(n.dir, boltstore.FileName))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return sum, 0, err
	}
	sum = sha256.Sum256(b)
	if s.faults.etcdAnswers() {
		// Best effort: just after etcd restarts, the test's own client
		// may still be in its reconnect backoff. Revision 0 leaves the
		// etcd half of the STATUS check out for this once.
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		if resp, err := s.etcd.Get(ctx, "medianet-soak-revision"); err == nil {
			rev = resp.Header.Revision
		}
	}
	return sum, rev, nil
}
