package soak

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"time"
)

// addErrorCodes are the CNI codes an ADD may fail with here: 7 (an
// address asked for is taken, reserved or not the node's; the node has
// no range), 11 (etcd unreachable when a claim is needed), 100 (no free
// address). Anything else (999, no JSON) fails the run.
var addErrorCodes = []uint{7, 11, 100}

// settle applies o's outcome to the model, as the runtime sees it, and
// checks what the runtime can check.
func (s *soak) settle(o *op) {
	s.observePace(o)
	if o.kill != killNone {
		s.fig.kills++
	}
	if o.landed {
		s.fig.faults[killFault(o.kill)]++
	}
	switch o.kind {
	case opAdd:
		s.settleAdd(o)
	case opDel, opDelRetry, opDelTwice:
		s.settleDel(o)
	case opSync:
		switch {
		case o.landed:
			s.record(o, "killed", "")
		case o.call.Exit == 0 || o.call.Exit == 1:
			s.record(o, fmt.Sprintf("exit %d", o.call.Exit), firstLine(o.call.Stdout+o.call.Stderr))
		default:
			s.fail("%s: exit %d: %s%s", o, o.call.Exit, o.call.Stdout, o.call.Stderr)
		}
	default: // GC, STATUS: their code is a figure; a crash fails the run
		if o.landed {
			s.record(o, "killed", "")
			return
		}
		if o.call.Exit == 0 {
			s.record(o, "ok", "")
			return
		}
		out, err := o.call.Outcome()
		if err != nil || out.Code == 999 || out.Code == 0 {
			s.fail("%s: exit %d, no CNI error or an internal one (%v): %s%s", o, o.call.Exit, err, o.call.Stdout, o.call.Stderr)
		}
		s.recordError(o, out.Code, out.Msg)
	}
}

func (s *soak) settleAdd(o *op) {
	c := o.c
	if o.landed {
		c.dying = true
		s.model.containers[c.id] = c
		s.record(o, "killed", "")
		return
	}
	out, err := o.call.Outcome()
	if err != nil {
		s.fail("%s: %v (exit %d, stderr %q)", o, err, o.call.Exit, o.call.Stderr)
	}
	if out.Code != 0 {
		if !slices.Contains(addErrorCodes, out.Code) {
			s.fail("%s failed with code %d: %s", o, out.Code, out.Msg)
		}
		// The runtime tears the sandbox down: DEL follows.
		c.dying = true
		s.model.containers[c.id] = c
		s.absent = append(s.absent, c)
		s.recordError(o, out.Code, out.Msg)
		return
	}
	if len(out.IPs) != 1 {
		s.fail("%s: result has %d addresses, want 1: %s", o, len(out.IPs), o.call.Stdout)
	}
	p, err := netip.ParsePrefix(out.IPs[0].Address)
	if err != nil {
		s.fail("%s: result address %q: %v", o, out.IPs[0].Address, err)
	}
	ip, n := p.Addr(), s.nodes[o.node]
	if why := n.specs[o.net].mayHandOut(n.name, ip); why != "" {
		s.fail("%s handed out %s: %s", o, ip, why)
	}
	if o.want.IsValid() && ip != o.want {
		s.fail("%s asked for %s and got %s", o, o.want, ip)
	}
	if other, dup := s.model.liveIP(o.net, ip); dup {
		s.fail("%s got %s, which live container %s (node %s) holds", o, ip, other, s.nodes[other.node].name)
	}
	c.ip = ip
	s.model.containers[c.id] = c
	s.record(o, "ok", ip.String())
	s.stickyFigure(o, ip)
}

// stickyFigure counts how pods on the sticky network came back.
func (s *soak) stickyFigure(o *op, ip netip.Addr) {
	if o.c.workload == "" || o.net != etcdNet {
		return
	}
	// Counted apart by whether the node could reach etcd: with etcd
	// reachable a pod that comes back within its period must get its
	// address (issue 18); without, a new one is the safe side.
	cond := "etcd reachable"
	if s.faults.etcd != "up" || s.faults.cutUntil[o.node] != 0 {
		cond = "etcd unreachable"
	}
	switch {
	case o.expect.IsValid() && ip == o.expect:
		s.fig.sticky[cond+": its hold on the same node taken back"]++
	case o.expect.IsValid():
		s.fig.sticky[cond+": MISSED its hold on the same node"]++
		s.fig.notes = append(s.fig.notes, fmt.Sprintf("step %d (%s): %s got %s, its hold on the node was %s", s.step, cond, o, ip, o.expect))
	case s.heldElsewhere(o, ip):
		s.fig.sticky[cond+": its hold moved from another node"]++
	default:
		if where, held := s.liveHold(o); where == s.nodes[o.node].name {
			s.fig.sticky[cond+": a new address (its hold here could not be used: block lost, or address reserved now)"]++
			return
		} else if held.IsValid() {
			// A hold well inside its period on another node, not moved:
			// a miss to explain, like one on the same node.
			s.fig.sticky[cond+": MISSED its hold on another node"]++
			s.fig.notes = append(s.fig.notes, fmt.Sprintf("step %d (%s): %s got %s, its hold on %s was %s", s.step, cond, o, ip, where, held))
			return
		}
		s.fig.sticky[cond+": a new address (no hold left: first start, or its period was over)"]++
	}
}

// liveHold returns a hold of o's pod that had more than a few seconds
// left before the step (its node's name and address), on o's node first.
func (s *soak) liveHold(o *op) (string, netip.Addr) {
	order := []int{o.node}
	for i := range s.last.nodes {
		if i != o.node {
			order = append(order, i)
		}
	}
	for _, i := range order {
		ns := s.last.nodes[i]
		for _, a := range ns.allocs[etcdNet] {
			if a.IsHold() && a.Workload == o.c.workload && len(a.IPs) == 1 && time.Until(a.HeldUntil) > 3*time.Second {
				return s.nodes[i].name, a.IPs[0]
			}
		}
	}
	return "", netip.Addr{}
}

// heldElsewhere reports whether another node held ip for o's pod before
// the step.
func (s *soak) heldElsewhere(o *op, ip netip.Addr) bool {
	for i, ns := range s.last.nodes {
		if i == o.node {
			continue
		}
		for _, a := range ns.allocs[etcdNet] {
			if a.IsHold() && a.Workload == o.c.workload && slices.Contains(a.IPs, ip) {
				return true
			}
		}
	}
	return false
}

func (s *soak) settleDel(o *op) {
	if o.landed {
		o.c.dying = true
		s.record(o, "killed", "")
		return
	}
	if o.call.Exit != 0 {
		out, _ := o.call.Outcome()
		s.fail("%s failed (a DEL must succeed, also when the netns or the allocation is gone): exit %d, code %d %q %s",
			o, o.call.Exit, out.Code, out.Msg, o.call.Stderr)
	}
	if o.kind != opDelTwice {
		s.model.remove(o.c)
	}
	s.record(o, "ok", "")
}

// record counts o's outcome and logs it.
func (s *soak) record(o *op, outcome, detail string) {
	m := s.fig.ops[o.kind]
	if m == nil {
		m = map[string]int{}
		s.fig.ops[o.kind] = m
	}
	m[outcome]++
	if detail != "" {
		detail = ": " + detail
	}
	if o.orphans > 0 {
		detail += fmt.Sprintf(" [%d helper(s) ran on as orphans]", o.orphans)
	}
	s.logf("%s -> %s%s (%v)", o, outcome, detail, o.took.Round(time.Millisecond))
}

func (s *soak) recordError(o *op, code uint, msg string) {
	s.record(o, fmt.Sprintf("error %d", code), msg)
	s.fig.errors[fmt.Sprintf("%s code %d: %s", o.kind, code, normalize(msg))]++
}

var numbers = regexp.MustCompile(`[0-9a-f]*[0-9][0-9a-f.:/]*`)

// normalize replaces the numbers and addresses of a message with '#', so
// that the figures group messages by kind.
func normalize(msg string) string {
	msg = numbers.ReplaceAllString(msg, "#")
	if len(msg) > 160 {
		msg = msg[:160] + "..."
	}
	return msg
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

// digest is a node's store file and etcd's revision, before and after a
// STATUS.
type digest struct {
	sum [32]byte
	rev int64
}

func (s *soak) digest(node int) digest {
	sum, rev, err := s.storeDigest(s.nodes[node])
	s.must(err)
	return digest{sum, rev}
}

// statusWroteNothing: STATUS changed neither the node's store nor etcd.
func (s *soak) statusWroteNothing(o *op, before digest) {
	after := s.digest(o.node)
	if after.sum != before.sum {
		s.fail("%s wrote to node %s's store", o, s.nodes[o.node].name)
	}
	if before.rev != 0 && after.rev != 0 && after.rev != before.rev {
		s.fail("%s wrote to etcd: revision %d, then %d", o, before.rev, after.rev)
	}
	s.fig.checks["STATUS wrote nothing"]++
}
