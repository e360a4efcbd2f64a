package dockertest

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/medianet/medianet/internal/nstest"
)

// killNamespace kills (SIGKILL) every process whose network namespace is
// ns and every descendant of those (containers run in namespaces of their
// own, under shims that run in ns), and waits until they are gone. Only
// processes a test host started live there: the namespace is the test's.
func killNamespace(ns *nstest.NS) error {
	var target syscall.Stat_t
	if err := syscall.Stat(ns.Path, &target); err != nil {
		return fmt.Errorf("sweep %s: %w", ns, err)
	}
	var left []int
	for range 5 {
		victims, err := namespaceProcs(target.Dev, target.Ino)
		if err != nil {
			return fmt.Errorf("sweep %s: %w", ns, err)
		}
		if len(victims) == 0 {
			return nil
		}
		for _, pid := range victims {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		left = victims
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) && slices.ContainsFunc(left, alive) {
			time.Sleep(50 * time.Millisecond)
		}
	}
	return fmt.Errorf("sweep %s: processes %v survive SIGKILL", ns, slices.DeleteFunc(left, func(p int) bool { return !alive(p) }))
}

// namespaceProcs lists the processes in the network namespace (dev, ino)
// and all their descendants, never this process or its parent.
func namespaceProcs(dev uint64, ino uint64) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	parent := map[int]int{}
	set := map[int]bool{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		ppid, ok := parentOf(pid)
		if !ok {
			continue // gone meanwhile
		}
		parent[pid] = ppid
		var st syscall.Stat_t
		if syscall.Stat(fmt.Sprintf("/proc/%d/ns/net", pid), &st) == nil && st.Dev == dev && st.Ino == ino {
			set[pid] = true
		}
	}
	for grown := true; grown; {
		grown = false
		for pid, ppid := range parent {
			if !set[pid] && set[ppid] {
				set[pid], grown = true, true
			}
		}
	}
	delete(set, os.Getpid())
	delete(set, os.Getppid())
	var out []int
	for pid := range set {
		out = append(out, pid)
	}
	slices.Sort(out)
	return out, nil
}

// parentOf reads the parent PID from /proc/PID/stat.
func parentOf(pid int) (int, bool) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	// "pid (comm) state ppid ...": comm may hold spaces and parentheses.
	s := string(raw)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return 0, false
	}
	ppid, err := strconv.Atoi(f[1])
	return ppid, err == nil
}

// alive reports whether pid exists and is not a zombie (a zombie has left
// its namespaces).
func alive(pid int) bool {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(raw)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && len(s) > i+2 && s[i+2] != 'Z'
}

// removeCgroup removes the cgroup rel (e.g. "/mndk1234") and everything
// below it from every cgroup hierarchy; a missing one is fine.
func removeCgroup(rel string) error {
	raw, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return err
	}
	var errs []error
	for line := range strings.SplitSeq(string(raw), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || (f[2] != "cgroup" && f[2] != "cgroup2") {
			continue
		}
		root := filepath.Join(f[1], rel)
		var dirs []string
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				dirs = append(dirs, path)
			}
			return nil
		})
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, d := range slices.Backward(dirs) { // children first
			if err := syscall.Rmdir(d); err != nil && !errors.Is(err, syscall.ENOENT) {
				errs = append(errs, fmt.Errorf("remove cgroup %s: %w", d, err))
			}
		}
	}
	return errors.Join(errs...)
}
