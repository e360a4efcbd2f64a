package scale

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/medianet/medianet/internal/etcdtest"
	"github.com/medianet/medianet/internal/etcdtest/simnode"
	"github.com/medianet/medianet/ipam/etcdstore"
	"github.com/medianet/medianet/ipam/kubestore"
)

type opKind int

const (
	opAdd opKind = iota
	opDel
	opSync
)

// opRec is one ADD or DEL attempt.
type opRec struct {
	kind  opKind
	start time.Time
	took  time.Duration
	tr    simnode.Trace
	err   error
}

// stats collects the operations of one phase.
type stats struct {
	mu  sync.Mutex
	ops []opRec
}

func (s *stats) record(k opKind, start time.Time, took time.Duration, tr simnode.Trace, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ops = append(s.ops, opRec{k, start, took, tr, err})
}

// snapshot returns a copy of the records so far.
func (s *stats) snapshot() []opRec {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.ops)
}

// summary is what a phase's operations add up to.
type summary struct {
	adds, addErrs, dels, delErrs int
	syncs                        int
	add, del, sync, claim        []time.Duration // successful ADDs, DELs, syncs; each claim
	claimReqs                    []uint64        // etcd requests of each claiming ADD
	requests, writes             uint64          // client side, all operations
	errKinds                     map[string]int
}

func summarize(ops []opRec) summary {
	s := summary{errKinds: map[string]int{}}
	for _, o := range ops {
		s.requests += o.tr.Requests
		s.writes += o.tr.Writes
		if o.tr.Claims > 0 {
			s.claim = append(s.claim, o.tr.ClaimTime/time.Duration(o.tr.Claims))
			s.claimReqs = append(s.claimReqs, o.tr.Requests)
		}
		if o.err != nil {
			s.errKinds[errKind(o.err)]++
		}
		switch {
		case o.kind == opSync:
			s.syncs++
			s.sync = append(s.sync, o.took)
		case o.kind == opAdd && o.err == nil:
			s.adds++
			s.add = append(s.add, o.took)
		case o.kind == opAdd:
			s.addErrs++
		case o.err == nil:
			s.dels++
			s.del = append(s.del, o.took)
		default:
			s.delErrs++
		}
	}
	return s
}

// errFacts says how many operations failed, by kind of error.
func (s summary) errFacts() []string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(s.errKinds)) {
		out = append(out, fmt.Sprintf("%d attempts failed: %s", s.errKinds[k], k))
	}
	return out
}

// errKind names an error's class for the report.
func errKind(err error) string {
	switch {
	case errors.Is(err, etcdstore.ErrUnavailable):
		_, cause, _ := strings.Cut(err.Error(), etcdstore.ErrUnavailable.Error()+": ")
		return "etcd unavailable (CNI 11): " + cause
	case errors.Is(err, kubestore.ErrUnavailable):
		cause, _, _ := strings.Cut(err.Error(), ": "+kubestore.ErrUnavailable.Error())
		return "kubernetes API server unavailable (CNI 11): " + lastCause(cause)
	case retryable(err):
		return "busy (CNI 11)"
	}
	return "other: " + err.Error()
}

// lastCause is the last part of a wrapped error's text, where the
// transport says what went wrong (a timeout, a refused connection).
func lastCause(s string) string {
	if i := strings.LastIndex(s, ": "); i >= 0 {
		return s[i+2:]
	}
	return s
}

func pct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*p/100)]
}

func maxOf[T int | uint64 | time.Duration](xs []T) T {
	if len(xs) == 0 {
		return 0
	}
	return slices.Max(xs)
}

// lat formats p50/p99/max of ds.
func lat(ds []time.Duration) string {
	if len(ds) == 0 {
		return "-"
	}
	return fmt.Sprintf("%s / %s / %s", ms(pct(ds, 50)), ms(pct(ds, 99)), ms(maxOf(ds)))
}

func ms(d time.Duration) string {
	switch {
	case d >= 10*time.Second:
		return fmt.Sprintf("%.0f s", d.Seconds())
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	case d >= 10*time.Millisecond:
		return fmt.Sprintf("%.0f ms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.1f ms", float64(d)/1e6)
}

// etcdSnap is the etcd members' counters and CPU time at one moment.
type etcdSnap struct {
	metrics []etcdtest.Metrics // per member; nil when down
	pids    []int
	cpu     []time.Duration
	self    time.Duration // this process's CPU time
}

func (s *sim) etcdSnapshot() etcdSnap {
	var snap etcdSnap
	for _, m := range s.etcd.Members {
		pid := m.PID()
		var ms etcdtest.Metrics
		var cpu time.Duration
		if pid != 0 {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			ms, _ = m.Metrics(ctx)
			cancel()
			cpu, _ = procCPU(pid)
		}
		snap.metrics, snap.pids, snap.cpu = append(snap.metrics, ms), append(snap.pids, pid), append(snap.cpu, cpu)
	}
	snap.self = selfCPU()
	return snap
}

// etcdDelta is what etcd did between two snapshots. Request counts add
// up over the members that were up at both (each client request is
// handled by one member); applied writes are counted once (every member
// applies every write).
type etcdDelta struct {
	txn, rng, kv  float64
	puts, deletes float64
	cpu, self     time.Duration
	dbBytes, keys float64
	partial       bool // a member restarted or was down: its requests are missing
}

func diff(a, b etcdSnap) etcdDelta {
	var d etcdDelta
	d.self = b.self - a.self
	kv := `grpc_service="etcdserverpb.KV"`
	for i := range a.metrics {
		if a.metrics[i] == nil || b.metrics[i] == nil || a.pids[i] != b.pids[i] {
			d.partial = true
			continue
		}
		x, y := a.metrics[i], b.metrics[i]
		sub := func(name string, labels ...string) float64 { return y.Sum(name, labels...) - x.Sum(name, labels...) }
		d.txn += sub("grpc_server_handled_total", kv, `grpc_method="Txn"`)
		d.rng += sub("grpc_server_handled_total", kv, `grpc_method="Range"`)
		d.kv += sub("grpc_server_handled_total", kv)
		d.puts = max(d.puts, sub("etcd_mvcc_put_total"))
		d.deletes = max(d.deletes, sub("etcd_mvcc_delete_total"))
		d.cpu += b.cpu[i] - a.cpu[i]
	}
	for _, m := range b.metrics {
		if m != nil {
			d.dbBytes = max(d.dbBytes, m.Sum("etcd_mvcc_db_total_size_in_bytes"))
			d.keys = max(d.keys, m.Sum("etcd_debugging_mvcc_keys_total"))
		}
	}
	return d
}

// conflicts are transactions that wrote nothing: a claim whose block
// another node took first (or a compare that failed elsewhere).
func (d etcdDelta) conflicts() float64 { return max(0, d.txn-d.puts-d.deletes) }

// procCPU returns the CPU time (user + system) of process pid.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name in parentheses: state is the first,
	// utime the 12th, stime the 13th (in clock ticks of 1/100 s).
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(u+s) * 10 * time.Millisecond, nil
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// loadAvg returns /proc/loadavg's first three fields.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}
