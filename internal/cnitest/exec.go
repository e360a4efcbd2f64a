package cnitest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// IPAMNet is one network of a simulated node, configured for
// medianet-ipam alone (as the reference macvlan plugin or Multus would
// pass it): "type" and "ipam.type" are both medianet-ipam.
type IPAMNet struct {
	Node, Dir, Name, Subnet string
	BlockSize               int
	Etcd                    map[string]any // nil: no ipam.etcd
	Extra                   map[string]any // more ipam keys (gateway, exclude, nodeRanges, sticky...)
}

// JSON returns the network configuration (cniVersion 1.1.0).
func (n IPAMNet) JSON() []byte {
	ipam := map[string]any{"type": "medianet-ipam", "subnet": n.Subnet, "node": n.Node, "dataDir": n.Dir}
	if n.BlockSize != 0 {
		ipam["blockSize"] = n.BlockSize
	}
	if n.Etcd != nil {
		ipam["etcd"] = n.Etcd
	}
	for k, v := range n.Extra {
		ipam[k] = v
	}
	b, err := json.Marshal(map[string]any{"cniVersion": "1.1.0", "name": n.Name, "type": "medianet-ipam", "ipam": ipam})
	if err != nil {
		panic(fmt.Sprintf("cnitest: network %q: %v", n.Name, err)) // only JSON values go in
	}
	return b
}

// Exec is one plugin execution as a runtime makes it: the CNI_* variables
// and the configuration on stdin, optionally inside a network namespace
// (a simulated node's).
type Exec struct {
	Bin         string // the plugin's path
	NS          string // network namespace to run it in ("": the caller's)
	Verb        string // CNI_COMMAND
	ContainerID string // CNI_CONTAINERID
	IfName      string // CNI_IFNAME
	Netns       string // CNI_NETNS ("" as for a sandbox whose namespace is gone)
	Args        string // CNI_ARGS ("K8S_POD_NAMESPACE=...;K8S_POD_NAME=...")
	Path        string // CNI_PATH
	Conf        []byte // stdin
}

// InNS returns a command running name in network namespace ns ("": in
// the caller's). `ip netns exec` execs name in place: the process is
// name's, and signals reach it.
func InNS(ns, name string, args ...string) *exec.Cmd {
	if ns == "" {
		return exec.Command(name, args...)
	}
	return exec.Command("ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

// Command returns the plugin's command, not started.
func (e Exec) Command() *exec.Cmd {
	cmd := InNS(e.NS, e.Bin)
	cmd.Env = []string{"CNI_COMMAND=" + e.Verb, "CNI_CONTAINERID=" + e.ContainerID, "CNI_IFNAME=" + e.IfName,
		"CNI_NETNS=" + e.Netns, "CNI_ARGS=" + e.Args, "CNI_PATH=" + e.Path, "PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.Stdin = bytes.NewReader(e.Conf)
	return cmd
}

// Run runs the plugin to its end.
func (e Exec) Run() Call {
	r, err := e.Start()
	if err != nil {
		return Call{Stderr: err.Error(), Exit: -1}
	}
	return r.Wait()
}

// Running is a started plugin execution.
type Running struct {
	cmd            *exec.Cmd
	stdout, stderr bytes.Buffer
	done           chan struct{}
}

// Start starts the plugin in a process group of its own, so that Kill
// reaches the helpers it runs (medianet-ipam runs medianet-ipam-etcd).
func (e Exec) Start() (*Running, error) {
	r, err := Start(e.Command())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", e.Verb, err)
	}
	return r, nil
}

// Start starts cmd (any program: a plugin, medianetctl) in a process
// group of its own, collecting its output, for Wait and Kill.
func Start(cmd *exec.Cmd) (*Running, error) {
	r := &Running{cmd: cmd, done: make(chan struct{})}
	r.cmd.Stdout, r.cmd.Stderr = &r.stdout, &r.stderr
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := r.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	go func() { _ = r.cmd.Wait(); close(r.done) }()
	return r, nil
}

// Wait waits for the program's end and returns its outcome.
func (r *Running) Wait() Call {
	<-r.done
	return Call{Stdout: r.stdout.String(), Stderr: r.stderr.String(), Exit: r.cmd.ProcessState.ExitCode()}
}

// Kill sends SIGKILL, as a runtime giving up on a plugin does. With group,
// every process of the execution dies (the plugin and its helpers);
// without, only the process the runtime started, and the helpers it ran
// carry on as orphans: their PIDs are returned (see WaitGone). Landed
// reports whether the plugin was still running; when it was not, nothing
// is killed and its outcome stands.
func (r *Running) Kill(group bool) (landed bool, orphans []int, err error) {
	select {
	case <-r.done:
		return false, nil, nil
	default:
	}
	pid := r.cmd.Process.Pid
	// Stopped, it cannot start a helper between the listing and the kill.
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		return false, nil, nil // gone meanwhile
	}
	if state(pid) == 'Z' {
		return false, nil, nil // it had finished: its outcome stands
	}
	if group {
		// Stopped processes die of SIGKILL too.
		return true, nil, syscall.Kill(-pid, syscall.SIGKILL)
	}
	orphans = children(pid)
	return true, orphans, syscall.Kill(pid, syscall.SIGKILL)
}

// WaitGone waits until none of pids runs any more (gone or a zombie),
// for at most d.
func WaitGone(pids []int, d time.Duration) error {
	deadline := time.Now().Add(d)
	for _, pid := range pids {
		for s := state(pid); s != 0 && s != 'Z'; s = state(pid) {
			if time.Now().After(deadline) {
				return fmt.Errorf("process %d still runs after %v (state %c)", pid, d, s)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return nil
}

// state returns the state letter of process pid from /proc/PID/stat
// (0 when there is no such process).
func state(pid int) byte {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// "PID (comm) S ...": comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return 0
	}
	return b[i+2]
}

// children lists the child processes of pid (every thread's).
func children(pid int) []int {
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	var out []int
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, t.Name()))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(f); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}

// Outcome is what a CNI plugin printed: a result's addresses, or an
// error's code and message.
type Outcome struct {
	IPs []struct {
		Address string `json:"address"`
	} `json:"ips"`
	Code uint   `json:"code"`
	Msg  string `json:"msg"`
}

// ErrNoOutput: the plugin printed nothing on stdout.
var ErrNoOutput = errors.New("no output on stdout")

// Outcome decodes c's stdout; an error when it is empty or not JSON.
func (c Call) Outcome() (Outcome, error) {
	var o Outcome
	if strings.TrimSpace(c.Stdout) == "" {
		return o, ErrNoOutput
	}
	if err := json.Unmarshal([]byte(c.Stdout), &o); err != nil {
		return o, fmt.Errorf("stdout is not JSON: %w", err)
	}
	return o, nil
}
