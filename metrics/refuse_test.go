package metrics

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/medianet/medianet/internal/ipamtest"
	"github.com/medianet/medianet/metrics/report"
)

// envSendDir makes the test binary a report sender (TestMain): it sends
// one valid report to the agent of that data directory and exits.
const envSendDir = "MEDIANET_TEST_SEND_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(envSendDir); dir != "" {
		if err := report.Send(dir, report.Report{Plugin: report.PluginMain, Verb: "ADD", Network: "media"}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// listening returns an agent over a new data directory that knows network
// media and listens for reports.
func listening(t *testing.T) (*Agent, string) {
	t.Helper()
	dir := t.TempDir()
	a := newAgent(t, dir, Network{Config: ipamtest.Config("media", "10.9.0.0/24")})
	if err := a.ListenReports(); err != nil {
		t.Fatal(err)
	}
	return a, dir
}

// rawReport encodes fields as a version 1 report, whatever their values.
func rawReport(t *testing.T, fields map[string]any) []byte {
	t.Helper()
	m := map[string]any{"v": report.Version, "plugin": report.PluginMain, "verb": "ADD", "network": "media", "code": 0, "dur": 1000}
	for k, v := range fields {
		m[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestReportsOutOfBounds: reports no plugin can send (a duration of 2^63
// ns, 2^62 claims, 2^40 etcd errors, an unknown verb or code) are refused
// and counted; the histograms and counters hold only the valid report, and
// no counter goes backwards however many such reports come.
func TestReportsOutOfBounds(t *testing.T) {
	a, dir := listening(t)
	bad := []map[string]any{
		{"dur": int64(1<<63 - 1)},
		{"dur": int64(2 * time.Hour)},
		{"lockWait": int64(time.Second), "dur": int64(time.Millisecond)},
		{"claims": 1 << 62},
		{"claims": 1 << 62},
		{"claimFailures": 1 << 62},
		{"etcdErrors": 1 << 40},
		{"etcdErrors": 1 << 40},
		{"verb": "EVIL"},
		{"plugin": report.PluginDocker, "verb": "NetworkDriver.Join"},
		{"code": 5000},
	}
	for _, f := range bad {
		if err := sendRaw(dir, rawReport(t, f)); err != nil {
			t.Fatal(err)
		}
	}
	if err := sendRaw(dir, rawReport(t, map[string]any{"claims": 2, "etcdErrors": 3, "dur": int64(20 * time.Millisecond)})); err != nil {
		t.Fatal(err)
	}
	waitValue(t, a, ReportsRefused, "node=node-a,reason=bounds", float64(len(bad)))
	waitValue(t, a, Reports, "node=node-a,result=ok", 1)
	if got := values(t, a, BlockClaims)["network=media,node=node-a"]; got != 2 {
		t.Errorf("%s = %v, want 2 (the valid report's)", BlockClaims, got)
	}
	if got := values(t, a, EtcdErrors)["network=media,node=node-a,source=plugin"]; got != 3 {
		t.Errorf("%s = %v, want 3", EtcdErrors, got)
	}
	if got := values(t, a, BlockClaimFailures)["network=media,node=node-a"]; got != 0 {
		t.Errorf("%s = %v, want 0", BlockClaimFailures, got)
	}
	sum := histogramSum(t, a, OperationDuration)
	if sum < 0.02 || sum > 0.021 {
		t.Errorf("%s sum = %v s, want the valid report's 0.02", OperationDuration, sum)
	}
	for k := range values(t, a, Operations) {
		if k != "code=0,network=media,node=node-a,operation=ADD,plugin=medianet" {
			t.Errorf("%s has series %s: only the valid report's may exist", Operations, k)
		}
	}
}

// histogramSum returns the sum of every series of histogram name.
func histogramSum(t *testing.T, a *Agent, name string) float64 {
	t.Helper()
	mfs, err := a.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetHistogram().GetSampleSum()
			}
		}
	}
	return sum
}

// TestReportsUnknownNetworks: reports naming networks the agent does not
// know (neither its sources nor the store) are recorded under network "",
// so no sender creates series; a network with state in the store is known.
func TestReportsUnknownNetworks(t *testing.T) {
	a, dir := listening(t)
	allocate(t, dir, ipamtest.Config("stored", "10.8.0.0/24"), 1)
	for i := range 50 {
		if err := sendRaw(dir, rawReport(t, map[string]any{"network": fmt.Sprintf("invented-%d", i)})); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []string{"media", "stored"} {
		if err := sendRaw(dir, rawReport(t, map[string]any{"network": n})); err != nil {
			t.Fatal(err)
		}
	}
	waitValue(t, a, Reports, "node=node-a,result=ok", 52)
	want := map[string]float64{
		"code=0,network=,node=node-a,operation=ADD,plugin=medianet":       50,
		"code=0,network=media,node=node-a,operation=ADD,plugin=medianet":  1,
		"code=0,network=stored,node=node-a,operation=ADD,plugin=medianet": 1,
	}
	if got := values(t, a, Operations); !equalValues(got, want) {
		t.Errorf("%s = %v, want %v", Operations, got, want)
	}
	// A delegated IPAM plugin's unusual code is "other", not a series each.
	if err := sendRaw(dir, rawReport(t, map[string]any{"code": 123})); err != nil {
		t.Fatal(err)
	}
	waitValue(t, a, Operations, "code=other,network=media,node=node-a,operation=ADD,plugin=medianet", 1)
}

// TestReportsSender: a report from a user that is neither root nor the
// agent's is refused, even when the socket's mode lets it connect.
func TestReportsSender(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root: runs a sender as user nobody (65534)")
	}
	a, dir := listening(t)
	// Everyone may reach and connect to the socket: only SO_PEERCRED stops
	// the sender now.
	for _, p := range []string{filepath.Dir(dir), dir, report.SocketPath(dir)} {
		if err := os.Chmod(p, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "sender")
	if err := copyFile(self, bin); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Dir(bin), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, uid := range []uint32{65534, 0} {
		cmd := exec.Command(bin)
		cmd.Env = []string{envSendDir + "=" + dir}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
		// The agent may close the refused connection before nobody's
		// write: EPIPE for that sender is fine.
		if out, err := cmd.CombinedOutput(); err != nil && (uid == 0 || cmd.ProcessState == nil) {
			t.Fatalf("sender as uid %d: %v: %s", uid, err, out)
		}
	}
	waitValue(t, a, Reports, "node=node-a,result=ok", 1) // root's
	waitValue(t, a, ReportsRefused, "node=node-a,reason=sender", 1)
	if got := values(t, a, Operations)["code=0,network=media,node=node-a,operation=ADD,plugin=medianet"]; got != 1 {
		t.Errorf("ADDs recorded = %v, want 1 (root's only)", got)
	}
}

func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o755)
}

// TestReportsLostCounted: the plugins' count of reports refused by a full
// backlog (one byte each in report.LostPath) is served as queue_full; the
// agent starts it at zero.
func TestReportsLostCounted(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(report.LostPath(dir), []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	a := newAgent(t, dir)
	if err := a.ListenReports(); err != nil {
		t.Fatal(err)
	}
	waitValue(t, a, ReportsRefused, "node=node-a,reason=queue_full", 0)
	f, err := os.OpenFile(report.LostPath(dir), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatalf("lost counter: %v", err)
	}
	f.Write([]byte("xxxxx"))
	f.Close()
	waitValue(t, a, ReportsRefused, "node=node-a,reason=queue_full", 5)
}

// TestReportBacklog: with the agent not accepting (its backlog of 4
// full), further reports are refused at once and counted, and every report
// is either received or counted once the agent accepts again.
func TestReportBacklog(t *testing.T) {
	dir := t.TempDir()
	a, err := New(Options{Node: "node-a", DataDir: dir, ReportBacklog: 4,
		Sources: []NetworkSource{Static(func(context.Context) ([]Network, error) {
			return []Network{{Config: ipamtest.Config("media", "10.9.0.0/24")}}, nil
		})}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	// Bind and listen as ListenReports does, but serve only later.
	l, err := listenReports(dir, 4)
	if err != nil {
		t.Fatal(err)
	}
	lost := report.LostPath(dir)
	a.rec.refused.lostPath.Store(&lost)
	const sends = 50
	for range sends {
		_ = report.Send(dir, report.Report{Plugin: report.PluginMain, Verb: "DEL", Network: "media"})
	}
	a.l = l
	a.wg.Go(func() { serveReports(l, a) })
	ok, refused := "node=node-a,result=ok", "node=node-a,reason=queue_full"
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, gotLost := values(t, a, Reports)[ok], values(t, a, ReportsRefused)[refused]
		if got+gotLost == sends && got >= 4 && gotLost > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v received + %v counted lost, want %d in all with the backlog (4) filled", got, gotLost, sends)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
