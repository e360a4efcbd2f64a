package soak

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/medianet/medianet/internal/cnitest"
)

// Operation kinds, as the figures name them.
const (
	opAdd      = "ADD"
	opDel      = "DEL"
	opDelRetry = "DEL (runtime retry)"
	opDelTwice = "DEL (already deleted)"
	opGC       = "GC"
	opStatus   = "STATUS"
	opSync     = "ipam sync"
)

// Kill modes: SIGKILL to the plugin's whole process group (it and the
// medianet-ipam-etcd it runs), or to the process the runtime started
// alone (as Go's exec.CommandContext does on a runtime's timeout: the
// helper carries on as an orphan).
const (
	killNone = iota
	killGroup
	killParent
)

// missingNetns is CNI_NETNS for sandboxes: a path that does not exist
// (medianet-ipam has no use for it).
const missingNetns = "/var/run/netns/medianet-soak-none"

// op is one operation of a step and, once run, its outcome.
type op struct {
	kind  string
	node  int
	net   string
	c     *container   // ADD, DEL
	want  netip.Addr   // ADD: requested address (CNI_ARGS IP=)
	netns string       // DEL: "" for a sandbox whose namespace is gone
	valid []*container // GC: the live attachments
	kill  int
	delay time.Duration // before the kill
	// expect is the address a pod's ADD must get back (its hold on the
	// node), when the previous state says so (stickyExpect).
	expect netip.Addr

	call    cnitest.Call
	landed  bool // the kill landed while the program ran
	orphans int  // helpers left running by a parent kill (waited for)
	took    time.Duration
}

func (o *op) String() string {
	s := fmt.Sprintf("%s node %d %s", o.kind, o.node, o.net)
	if o.c != nil {
		s = fmt.Sprintf("%s node %d %s", o.kind, o.node, o.c)
	}
	if o.want.IsValid() {
		s += " IP=" + o.want.String()
	}
	if o.c != nil && o.netns == "" {
		s += " (netns gone)"
	}
	if o.kind == opGC {
		s += fmt.Sprintf(" (%d valid)", len(o.valid))
	}
	if o.kill != killNone {
		s += fmt.Sprintf(" [kill %s after %v]", map[int]string{killGroup: "group", killParent: "parent"}[o.kill], o.delay.Round(time.Millisecond))
	}
	return s
}

// cniArgs returns CNI_ARGS for an ADD or DEL: the pod, as kubelet passes
// it, and the requested address.
func (o *op) cniArgs() string {
	var kv []string
	if o.c != nil && o.c.workload != "" {
		ns, name, _ := strings.Cut(o.c.workload, "/")
		kv = append(kv, "K8S_POD_NAMESPACE="+ns, "K8S_POD_NAME="+name, "K8S_POD_INFRA_CONTAINER_ID="+o.c.id)
	}
	if o.want.IsValid() {
		kv = append(kv, "IP="+o.want.String())
	}
	return strings.Join(kv, ";")
}

// command returns the program o runs on node n.
func (s *soak) command(o *op) *exec.Cmd {
	n := s.nodes[o.node]
	if o.kind == opSync {
		cmd := cnitest.InNS(n.ns.Name, s.bin("medianetctl"), append([]string{"--data-dir", n.dir, "ipam", "sync"}, n.confFiles()...)...)
		cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
		return cmd
	}
	e := cnitest.Exec{Bin: s.bin("medianet-ipam"), NS: n.ns.Name, IfName: ifName, Path: bins, Conf: n.conf(o.net), Netns: missingNetns}
	switch o.kind {
	case opAdd:
		e.Verb, e.ContainerID, e.Args = "ADD", o.c.id, o.cniArgs()
	case opDel, opDelRetry, opDelTwice:
		e.Verb, e.ContainerID, e.Args, e.Netns = "DEL", o.c.id, o.cniArgs(), o.netns
	case opGC:
		e.Verb, e.Conf = "GC", withValid(e.Conf, o.valid)
	case opStatus:
		e.Verb = "STATUS"
	}
	return e.Command()
}

// withValid adds GC's cni.dev/valid-attachments to conf.
func withValid(conf []byte, valid []*container) []byte {
	var m map[string]any
	if err := json.Unmarshal(conf, &m); err != nil {
		panic(err) // our own configuration
	}
	list := []map[string]string{}
	for _, c := range valid {
		list = append(list, map[string]string{"containerID": c.id, "ifname": ifName})
	}
	m["cni.dev/valid-attachments"] = list
	b, _ := json.Marshal(m)
	return b
}

// run runs the step's operations at once, as a runtime runs sandboxes in
// parallel, killing those that ask for it, and waits for every process
// (orphaned helpers too): the step ends quiescent.
func (s *soak) run(ops []*op) {
	var wg sync.WaitGroup
	for _, o := range ops {
		wg.Go(func() { s.runOne(o) })
	}
	wg.Wait()
}

func (s *soak) runOne(o *op) {
	start := time.Now()
	defer func() { o.took = time.Since(start) }()
	r, err := cnitest.Start(s.command(o))
	if err != nil {
		o.call = cnitest.Call{Stderr: err.Error(), Exit: -1}
		return
	}
	if o.kill != killNone {
		time.Sleep(o.delay)
		landed, orphans, err := r.Kill(o.kill == killGroup)
		if err != nil {
			s.logf("kill of %s: %v", o, err)
		}
		o.landed, o.orphans = landed, len(orphans)
		// A helper left running finishes its work (it holds the store
		// lock at most its timeout); the step waits for it.
		if err := cnitest.WaitGone(orphans, 60*time.Second); err != nil {
			s.logf("%s: orphan: %v", o, err)
		}
	}
	o.call = r.Wait()
}
