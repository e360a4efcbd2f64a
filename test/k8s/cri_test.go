package k8s_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/medianet/medianet/ipam/boltstore"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestCRIPodsOnMedianet: pods started through CRI get eth0 as a macvlan
// with an address of this node's range, PodSandboxStatus reports that
// address, and the pods reach each other and a LAN host.
func TestCRIPodsOnMedianet(t *testing.T) {
	n := newNode(t, nil)
	a, b := n.runPod(t, "media-a"), n.runPod(t, "media-b")
	for _, p := range []pod{a, b} {
		kind, addrs := p.eth0(t)
		if kind != "macvlan" || len(addrs) != 1 || addrs[0] != p.ip || !nodeRange.Contains(p.ip) {
			t.Errorf("pod %s: eth0 %s with %v, status %s; want a macvlan carrying the status address, inside %s", p.id, kind, addrs, p.ip, nodeRange)
		}
	}
	if a.ip == b.ip {
		t.Fatalf("both pods got %s", a.ip)
	}
	if err := a.netns.Ping(b.ip, 3); err != nil {
		t.Errorf("pod a -> pod b: %v", err)
	}
	if err := b.netns.Ping(gateway, 3); err != nil {
		t.Errorf("pod b -> LAN host %s: %v", gateway, err)
	}
	if err := n.peer.Ping(a.ip, 3); err != nil {
		t.Errorf("LAN host -> pod a: %v", err)
	}
}

// TestCRITwentyPodsAtOnce starts twenty pods in parallel, as kubelet does
// on a busy node: twenty distinct addresses, all of this node's range, all
// recorded; deleting them all leaves nothing allocated.
func TestCRITwentyPodsAtOnce(t *testing.T) {
	n := newNode(t, nil)
	const count = 20
	ids := make([]string, count)
	errs := make([]error, count)
	var wg sync.WaitGroup
	for i := range count {
		wg.Go(func() {
			ids[i], errs[i] = n.RunPod(podSpec("burst", i))
		})
	}
	wg.Wait()
	seen := map[string]string{}
	for i, id := range ids {
		mustf(t, errs[i], "pod %d", i)
		p := n.pod(t, id)
		if !nodeRange.Contains(p.ip) {
			t.Errorf("pod %d: %s outside %s", i, p.ip, nodeRange)
		}
		if other, dup := seen[p.ip.String()]; dup {
			t.Errorf("pods %s and %s both got %s", other, id, p.ip)
		}
		seen[p.ip.String()] = id
	}
	if got := ipamList(t, n.dataDir); len(got) != count {
		t.Errorf("medianetctl lists %d allocations, want %d", len(got), count)
	}
	for i := range count {
		wg.Go(func() { errs[i] = n.StopRemove(ids[i]) })
	}
	wg.Wait()
	for i := range count {
		mustf(t, errs[i], "delete pod %d", i)
	}
	if got := ipamList(t, n.dataDir); len(got) != 0 {
		t.Errorf("after deleting every pod: %d allocations left: %v", len(got), got)
	}
}

// TestCRIStopRemoveReleases: StopPodSandbox releases the address (DEL with
// the netns); RemovePodSandbox and a repeated stop bring DEL again without
// a netns, which must succeed too. The address is then free for the next
// pod.
func TestCRIStopRemoveReleases(t *testing.T) {
	n := newNode(t, nil)
	p := n.runPod(t, "short-lived")
	if a, ok := ipamList(t, n.dataDir)[p.id]; !ok || !slices.Contains(a.IPs, p.ip.String()) {
		t.Fatalf("allocation of %s: %+v, want it to hold %s", p.id, a, p.ip)
	}
	ctx, cancel := ctxCRI()
	defer cancel()
	_, err := n.Runtime.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: p.id})
	must(t, err)
	if a, ok := ipamList(t, n.dataDir)[p.id]; ok {
		t.Errorf("after StopPodSandbox the allocation remains: %+v", a)
	}
	// kubelet stops a sandbox again before removing it.
	_, err = n.Runtime.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: p.id})
	must(t, err)
	_, err = n.Runtime.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: p.id})
	must(t, err)
	dels := logLines(t, n.logFile, "DEL", p.id)
	withNetns, withoutNetns := 0, 0
	for _, l := range dels {
		if !strings.HasSuffix(l, " ok") {
			t.Errorf("DEL failed: %s", l)
		}
		if strings.Contains(l, " netns= ") {
			withoutNetns++
		} else {
			withNetns++
		}
	}
	if withNetns < 1 || withoutNetns < 1 {
		t.Errorf("DEL calls: %d with a netns, %d without; want both kinds:\n%s", withNetns, withoutNetns, strings.Join(dels, "\n"))
	}
	if got := ipamList(t, n.dataDir); len(got) != 0 {
		t.Errorf("allocations left: %v", got)
	}
	next := n.runPod(t, "next")
	if !nodeRange.Contains(next.ip) {
		t.Errorf("next pod: %s outside %s", next.ip, nodeRange)
	}
}

// TestCRIRestartKeepsAddresses restarts containerd under running pods,
// once cleanly and once by SIGKILL: every pod keeps its address in CRI's
// status, on its eth0 and in the store, and no CNI call is made for them.
func TestCRIRestartKeepsAddresses(t *testing.T) {
	n := newNode(t, nil)
	var pods []pod
	for i := range 3 {
		pods = append(pods, n.pod(t, mustRun(t, n, podSpec("steady", i))))
	}
	before := ipamList(t, n.dataDir)
	for _, restart := range []struct {
		name string
		do   func()
	}{{"SIGTERM", n.Stop}, {"SIGKILL", n.Kill}} {
		restart.do()
		must(t, n.Start())
		for _, p := range pods {
			st, err := n.Status(p.id)
			must(t, err)
			if st.State != runtime.PodSandboxState_SANDBOX_READY || len(st.IPs) != 1 || st.IPs[0] != p.ip {
				t.Errorf("%s: pod %s: %+v, want ready with %s", restart.name, p.id, st, p.ip)
			}
			if _, addrs := p.eth0(t); !slices.Contains(addrs, p.ip) {
				t.Errorf("%s: pod %s eth0 has %v, want %s", restart.name, p.id, addrs, p.ip)
			}
			if got := ipamList(t, n.dataDir)[p.id]; !slices.Equal(got.IPs, before[p.id].IPs) {
				t.Errorf("%s: allocation of %s is %v, was %v", restart.name, p.id, got.IPs, before[p.id].IPs)
			}
			if adds, dels := logLines(t, n.logFile, "ADD", p.id), logLines(t, n.logFile, "DEL", p.id); len(adds) != 1 || len(dels) != 0 {
				t.Errorf("%s: pod %s saw %d ADD and %d DEL, want 1 and 0", restart.name, p.id, len(adds), len(dels))
			}
		}
	}
	if err := pods[0].netns.Ping(pods[2].ip, 3); err != nil {
		t.Errorf("after the restarts, pod 0 -> pod 2: %v", err)
	}
}

// TestCRIWorkloadRecorded: the allocation names the pod (K8S_POD_NAMESPACE
// and K8S_POD_NAME, which containerd passes as CNI args), and
// medianetctl ipam list shows it.
func TestCRIWorkloadRecorded(t *testing.T) {
	n := newNode(t, nil)
	p := n.runPod(t, "janus-0")
	a := ipamList(t, n.dataDir)[p.id]
	if a.Workload != "media/janus-0" {
		t.Errorf("medianetctl ipam list --json: workload %q for %s, want %q", a.Workload, p.id, "media/janus-0")
	}
}

// TestCRIBadConfigError: a configuration medianet refuses fails
// RunPodSandbox with medianet's message, naming the field and the CNI
// error code, in the text kubelet receives (and shows in pod events).
// DEL refuses the same configuration (it cannot know what an earlier,
// valid one allocated), so the failed sandbox goes once the
// configuration is fixed, as kubelet's retries would find.
func TestCRIBadConfigError(t *testing.T) {
	n := newNode(t, nil)
	n.WriteConflist("10-media.conflist", medianetConflist(n.lan.Master, n.dataDir, n.logFile, map[string]any{"mode": "bridged"}))
	must(t, n.WaitNetwork(`"mode":"bridged"`))
	_, err := n.RunPod(podSpec("refused", 0))
	if err == nil {
		t.Fatal("RunPodSandbox succeeded with mode \"bridged\"")
	}
	for _, want := range []string{`mode "bridged" is unknown`, "CNI error code 7"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("CRI error %q lacks %q", err, want)
		}
	}
	if got := ipamList(t, n.dataDir); len(got) != 0 {
		t.Errorf("a refused ADD left allocations: %v", got)
	}
	n.WriteConflist("10-media.conflist", medianetConflist(n.lan.Master, n.dataDir, n.logFile, nil))
	must(t, n.WaitNetwork(`"mode":"bridge"`))
	n.RemoveAllPods()
	if p := n.runPod(t, "accepted"); !nodeRange.Contains(p.ip) {
		t.Errorf("after the fix: pod address %s outside %s", p.ip, nodeRange)
	}
}

// TestCRIKillDuringAdd kills containerd while a pod's CNI ADD is under
// way (the plugin held on the store's lock, so it is mid-ADD for sure);
// the orphaned plugin finishes on its own and logs it. containerd 1.6 has recorded the
// sandbox before its network setup, so after the restart kubelet's stop
// and remove of the not-ready sandbox run DEL and free the address, and
// the pod's next attempt gets one: nothing leaks, neither the address nor
// the network namespace.
func TestCRIKillDuringAdd(t *testing.T) {
	n := newNode(t, nil)
	lock, err := os.OpenFile(filepath.Join(n.dataDir, boltstore.LockName), os.O_RDWR|os.O_CREATE, 0o600)
	must(t, err)
	defer lock.Close()
	must(t, syscall.Flock(int(lock.Fd()), syscall.LOCK_EX))
	done := make(chan error, 1)
	go func() { _, err := n.RunPod(podSpec("crash", 0)); done <- err }()
	deadline := time.Now().Add(30 * time.Second)
	for !pluginRunning(n.BinDir) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !pluginRunning(n.BinDir) {
		t.Fatal("medianet's ADD never started")
	}
	n.Kill()
	<-done
	must(t, syscall.Flock(int(lock.Fd()), syscall.LOCK_UN))
	for len(ipamList(t, n.dataDir)) == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond) // the orphaned ADD completes
	}
	held := ipamList(t, n.dataDir)
	if len(held) != 1 {
		t.Fatalf("after the orphaned ADD: allocations %v, want one", held)
	}
	for id := range held {
		// Logged at the end of the ADD (after the conflict probe, which
		// comes after the allocation), before the result is written to
		// containerd's closed pipe: wait for it.
		l := logLines(t, n.logFile, "ADD", id)
		for len(l) == 0 && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
			l = logLines(t, n.logFile, "ADD", id)
		}
		if len(l) != 1 || !strings.HasSuffix(l[0], " ok") {
			t.Errorf("log of the orphaned ADD: %q, want one line ending ok", l)
		}
	}
	must(t, n.Start())
	ctx, cancel := ctxCRI()
	defer cancel()
	list, err := n.Runtime.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{})
	must(t, err)
	if len(list.Items) != 1 || list.Items[0].State != runtime.PodSandboxState_SANDBOX_NOTREADY || held[list.Items[0].Id].ContainerID == "" {
		t.Fatalf("after the restart containerd lists %v, want the not-ready sandbox holding %v", list.Items, held)
	}
	st, _ := n.Status(list.Items[0].Id)
	must(t, n.StopRemove(list.Items[0].Id))
	if left := ipamList(t, n.dataDir); len(left) != 0 {
		t.Errorf("after stop and remove of the crashed sandbox: allocations %v", left)
	}
	if _, err := os.Stat(st.Netns); st.Netns != "" && !os.IsNotExist(err) {
		t.Errorf("the crashed sandbox's netns %s remains: %v", st.Netns, err)
	}
	retry := podSpec("crash", 0)
	retry.Attempt = 1
	p := n.pod(t, mustRun(t, n, retry))
	if !nodeRange.Contains(p.ip) {
		t.Errorf("next attempt: %s outside %s", p.ip, nodeRange)
	}
}

// pluginRunning reports whether a medianet process from binDir runs.
func pluginRunning(binDir string) bool {
	procs, _ := filepath.Glob("/proc/[0-9]*/exe")
	for _, p := range procs {
		if exe, err := os.Readlink(p); err == nil && exe == filepath.Join(binDir, "medianet") {
			return true
		}
	}
	return false
}
