package ipam_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestMultiProcess: 8 concurrent processes' worth of ADDs, 100 each, all
// against one store file: no duplicate, every allocation accounted for.
func TestMultiProcess(t *testing.T) {
	const workers, each = 8, 100
	p := bin("medianet-ipam")
	dir := t.TempDir()
	conf := netConf("1.1.0", dir, `"subnets":["10.70.0.0/22","fd00:70::/64"]`)
	var mu sync.Mutex
	got := map[string]string{} // cid -> addresses
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				cid := fmt.Sprintf("mp-%d-%d", w, i)
				c, err := plugin(p, "ADD", cid, "eth0", conf)
				var r result
				if err == nil && (c.Exit != 0 || json.Unmarshal([]byte(c.Stdout), &r) != nil) {
					err = fmt.Errorf("ADD %s: exit %d: %s %s", cid, c.Exit, c.Stdout, c.Stderr)
				}
				if err != nil {
					errs <- err
					continue
				}
				mu.Lock()
				got[cid] = addrs(r)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	seen := map[string]string{}
	for cid, a := range got {
		for _, ip := range splitComma(a) {
			if prev, dup := seen[ip]; dup {
				t.Errorf("%s handed to %s and %s", ip, prev, cid)
			}
			seen[ip] = cid
		}
	}
	entries := list(t, dir, "media")
	if len(got) != workers*each || len(entries) != workers*each {
		t.Fatalf("%d ADDs reported, %d listed, want %d each", len(got), len(entries), workers*each)
	}
	for _, e := range entries {
		if want := got[e.ContainerID]; joinComma(e.IPs) != want {
			t.Errorf("listed %s = %v, plugin reported %s", e.ContainerID, e.IPs, want)
		}
	}
}

// TestCrash: processes are killed with SIGKILL in the middle of ADDs while
// others run. Afterwards the store opens, passes its consistency check, and
// `medianetctl ipam list` holds every ADD a surviving process reported, with
// the address it reported; extra entries only for killed processes.
func TestCrash(t *testing.T) {
	const workers, each = 4, 60
	p := bin("medianet-ipam")
	dir := t.TempDir()
	conf := netConf("1.1.0", dir, `"subnet":"10.71.0.0/22"`)
	var mu sync.Mutex
	reported := map[string]string{}
	killed := map[string]bool{}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for i := range each {
				cid := fmt.Sprintf("crash-%d-%d", w, i)
				res, wasKilled, err := addMaybeKill(p, cid, conf, rng)
				mu.Lock()
				if err != nil {
					t.Errorf("ADD %s (not killed) failed: %v", cid, err)
				} else if wasKilled {
					killed[cid] = true
				} else if res != "" {
					reported[cid] = res
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	t.Logf("%d ADDs reported, %d processes killed", len(reported), len(killed))
	if len(killed) == 0 || len(reported) == 0 {
		t.Fatalf("want both killed and completed ADDs, got %d and %d", len(killed), len(reported))
	}
	listed := map[string]string{}
	for _, e := range list(t, dir, "media") {
		listed[e.ContainerID] = joinComma(e.IPs)
	}
	for cid, a := range reported {
		if listed[cid] != a {
			t.Errorf("%s reported %s, listed %q", cid, a, listed[cid])
		}
	}
	committedKilled := 0
	for cid := range listed {
		if killed[cid] {
			committedKilled++
		}
		if _, ok := reported[cid]; !ok && !killed[cid] {
			t.Errorf("%s listed but neither reported nor killed", cid)
		}
	}
	t.Logf("%d killed processes had committed their allocation before dying", committedKilled)
	// DEL of every killed container succeeds (allocated or not); the store
	// stays consistent and only reported ADDs remain.
	for cid := range killed {
		if c := must(t)(plugin(p, "DEL", cid, "eth0", conf)); c.Exit != 0 {
			t.Errorf("DEL %s: %s", cid, c.Stdout)
		}
	}
	if n := len(list(t, dir, "media")); n != len(reported) {
		t.Errorf("after DEL of killed: %d listed, want %d", n, len(reported))
	}
}

// addMaybeKill runs one ADD; half the time it SIGKILLs the process after a
// random delay of up to 10 ms (an ADD takes about 5). It returns the addresses reported, if any.
func addMaybeKill(p, cid string, conf []byte, rng *rand.Rand) (string, bool, error) {
	cmd := exec.Command(p)
	cmd.Env = []string{"CNI_COMMAND=ADD", "CNI_CONTAINERID=" + cid, "CNI_NETNS=/var/run/netns/none",
		"CNI_IFNAME=eth0", "CNI_PATH=/usr/lib/cni"}
	cmd.Stdin = bytes.NewReader(conf)
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		return "", false, err
	}
	kill := rng.IntN(2) == 0
	if kill {
		time.Sleep(time.Duration(rng.IntN(10000)) * time.Microsecond)
		cmd.Process.Signal(syscall.SIGKILL)
	}
	err := cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return "", true, nil
	}
	var r result
	if err != nil || json.Unmarshal(out.Bytes(), &r) != nil || len(r.IPs) == 0 {
		return "", false, fmt.Errorf("%v: %s", err, out.String())
	}
	return addrs(r), false, nil
}

func splitComma(s string) []string {
	var out []string
	for _, f := range bytes.Split([]byte(s), []byte(",")) {
		out = append(out, string(f))
	}
	return out
}

func joinComma(ss []string) string {
	var b bytes.Buffer
	for i, s := range ss {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(s)
	}
	return b.String()
}
