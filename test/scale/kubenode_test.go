package scale

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/medianet/medianet/internal/etcdtest/simnode"
	"github.com/medianet/medianet/internal/kubetest"
	"github.com/medianet/medianet/ipam"
	"github.com/medianet/medianet/ipam/boltstore"
	"github.com/medianet/medianet/ipam/kubestore"
)

// kubeNode is a simulated node whose blocks are IPAMBlocks in the
// Kubernetes API: what medianet-ipam-kube does per CNI call (open the
// store, a fresh kubestore client that connects only when it must
// claim, the real allocator and kubestore.Source, close both). The
// embedded simnode.Node only reads its store, for the checks.
type kubeNode struct {
	*simnode.Node
	kc kubestore.Config
}

// kubeSession is what one plugin process has open.
type kubeSession struct {
	st  *boltstore.Store
	cli *kubestore.Client
	src *kubestore.Source
	a   *ipam.Allocator
}

func (n *kubeNode) open(ctx context.Context) (*kubeSession, error) {
	st, err := boltstore.Open(ctx, n.Dir, boltstore.Options{Timeout: 30 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("node %s: open store: %w", n.Name, err)
	}
	s := &kubeSession{st: st}
	if s.cli, err = kubestore.New(n.kc); err == nil {
		if s.src, err = kubestore.NewSource(s.cli, &n.Cfg, st); err == nil {
			s.a, err = ipam.NewAllocator(n.Cfg, st, s.src)
		}
	}
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("node %s: %w", n.Name, err)
	}
	return s, nil
}

// close closes the store and returns what the session cost in API
// requests (the client's count: every call, failed ones included).
func (s *kubeSession) close(claimed int) simnode.Trace {
	calls, _ := s.cli.Calls()
	s.st.Close()
	return simnode.Trace{Requests: uint64(calls), Claims: claimed}
}

// claims returns how many blocks the source claimed or tried to.
func (s *kubeSession) claims() int {
	c, f := s.src.ClaimStats()
	return c + f
}

func (n *kubeNode) add(ctx context.Context, cid string) (simnode.Trace, error) {
	s, err := n.open(ctx)
	if err != nil {
		return simnode.Trace{}, err
	}
	start := time.Now()
	_, err = s.a.Allocate(ctx, ipam.Request{ContainerID: cid, IfName: "eth0"})
	tr := s.close(s.claims())
	if tr.Claims > 0 {
		tr.ClaimTime = time.Since(start) // the ADD's time, its claim included
	}
	return tr, err
}

func (n *kubeNode) del(ctx context.Context, cid string) (simnode.Trace, error) {
	s, err := n.open(ctx)
	if err != nil {
		return simnode.Trace{}, err
	}
	alloc, _, err := s.a.Release(ctx, cid, "eth0")
	emptied := err == nil && ipam.Emptied(ctx, s.st, n.Cfg.Network, alloc.IPs)
	tr := s.close(0)
	tr.Emptied = emptied
	return tr, err
}

func (n *kubeNode) sync(ctx context.Context) (simnode.Trace, error) {
	s, err := n.open(ctx)
	if err != nil {
		return simnode.Trace{}, err
	}
	_, err = s.src.SyncIdle(ctx, s.st, time.Now())
	return s.close(0), err
}

func (n *kubeNode) store() *simnode.Node { return n.Node }

// checkKube verifies the invariants across the kube nodes: no address
// handed out twice, no two nodes' blocks overlapping, every held block
// claimed in the API by its holder, every address inside its node's
// blocks. It returns the number of allocations.
func checkKube(ctx context.Context, nodes []*simnode.Node, c *kubestore.Client) (int, error) {
	claims, err := c.Blocks(ctx, nodes[0].Cfg.Network, "")
	if err != nil {
		return 0, err
	}
	owner := map[netip.Prefix]string{}
	for _, b := range claims {
		owner[b.CIDR] = b.Node
	}
	type held struct {
		p    netip.Prefix
		node string
	}
	var blocks []held
	addrOwner := map[netip.Addr]string{}
	var errs []error
	total := 0
	for _, n := range nodes {
		bs, err := n.Blocks(ctx)
		if err != nil {
			return 0, err
		}
		for _, b := range bs {
			blocks = append(blocks, held{b.Prefix, n.Name})
			if owner[b.Prefix] != n.Name {
				errs = append(errs, fmt.Errorf("block %s held by %s, claimed in the API by %q", b.Prefix, n.Name, owner[b.Prefix]))
			}
		}
		as, err := n.Allocations(ctx)
		if err != nil {
			return 0, err
		}
		for _, a := range as {
			total++
			for _, ip := range a.IPs {
				if o, dup := addrOwner[ip]; dup {
					errs = append(errs, fmt.Errorf("address %s handed out by %s and %s", ip, o, n.Name))
				}
				addrOwner[ip] = n.Name
				if !slices.ContainsFunc(bs, func(b ipam.Block) bool { return b.Prefix.Contains(ip) }) {
					errs = append(errs, fmt.Errorf("address %s of %s is outside its blocks", ip, n.Name))
				}
			}
		}
	}
	slices.SortFunc(blocks, func(a, b held) int { return a.p.Addr().Compare(b.p.Addr()) })
	for i := 1; i < len(blocks); i++ {
		if blocks[i-1].p.Overlaps(blocks[i].p) {
			errs = append(errs, fmt.Errorf("block %s of %s overlaps block %s of %s", blocks[i-1].p, blocks[i-1].node, blocks[i].p, blocks[i].node))
		}
	}
	return total, errors.Join(errs...)
}

// apiRequests scrapes the API server's apiserver_request_total and adds
// up the requests of the given API groups ("" is the core group, counted
// for resources only: nodes, pods).
func apiRequests(ctx context.Context, srv *kubetest.Server, groups []string, coreResources []string) (float64, error) {
	pem, err := os.ReadFile(srv.CAFile())
	if err != nil {
		return 0, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer hc.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+kubetest.AdminToken)
	resp, err := hc.Do(req)
	if err != nil {
		return 0, fmt.Errorf("scrape kube-apiserver: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("scrape kube-apiserver: %s", resp.Status)
	}
	total := 0.0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		labels, ok := strings.CutPrefix(line, "apiserver_request_total{")
		if !ok {
			continue
		}
		end := strings.LastIndexByte(labels, '}')
		if end < 0 || !counted(labels[:end], groups, coreResources) {
			continue
		}
		v, err := strconv.ParseFloat(strings.Fields(labels[end+1:])[0], 64)
		if err != nil {
			return 0, fmt.Errorf("apiserver_request_total line %q: %w", line, err)
		}
		total += v
	}
	return total, sc.Err()
}

// counted reports whether a series' labels name one of the groups, or a
// core resource of the list.
func counted(labels string, groups, coreResources []string) bool {
	for _, g := range groups {
		if strings.Contains(labels, `group="`+g+`"`) {
			return true
		}
	}
	if !strings.Contains(labels, `group=""`) {
		return false
	}
	for _, r := range coreResources {
		if strings.Contains(labels, `resource="`+r+`"`) {
			return true
		}
	}
	return false
}
