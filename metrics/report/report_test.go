package report

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestRoundTrip(t *testing.T) {
	in := Report{Plugin: PluginMain, Verb: "ADD", Network: "media", Code: 11, Duration: 12 * time.Millisecond,
		LockWait: time.Millisecond, Claims: 1, ClaimFailures: 2, EtcdErrors: 3}
	b, err := in.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(b)
	in.V = Version
	if err != nil || got != in {
		t.Errorf("Decode(Marshal(%+v)) = %+v, %v", in, got, err)
	}
}

func TestDecodeRejects(t *testing.T) {
	for _, c := range []string{
		``, `[]`, `{"v":2,"plugin":"medianet","verb":"ADD"}`, `{"v":1,"verb":"ADD"}`,
		`{"v":1,"plugin":"medianet"}`, `{"v":1,"plugin":"medianet","verb":"ADD","dur":-1}`,
		`{"v":1,"plugin":"medianet","verb":"ADD","claims":-1}`,
	} {
		if _, err := Decode([]byte(c)); !errors.Is(err, ErrMalformed) {
			t.Errorf("Decode(%q) = %v, want ErrMalformed", c, err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"v":1,"plugin":"medianet","verb":"ADD","network":"media","code":0,"dur":1000}`))
	f.Add([]byte(`{"v":1,"plugin":"docker","verb":"NetworkDriver.Join","code":500}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Decode(b)
		if err != nil {
			return
		}
		again, err := r.Marshal()
		if err != nil {
			if len(b) <= MaxSize {
				t.Fatalf("decoded %q but cannot encode it: %v", b, err)
			}
			return
		}
		if r2, err := Decode(again); err != nil || r2 != r {
			t.Fatalf("re-decode of %q = %+v, %v; want %+v", again, r2, err, r)
		}
	})
}

// TestCheck: every value a plugin cannot send is refused, naming it.
func TestCheck(t *testing.T) {
	ok := Report{Plugin: PluginMain, Verb: "ADD", Network: "media", Code: 11, Duration: time.Second, LockWait: time.Second,
		Claims: MaxCount, ClaimFailures: MaxCount, EtcdErrors: MaxCount}
	if err := Check(ok); err != nil {
		t.Fatalf("Check(%+v) = %v, want nil", ok, err)
	}
	tests := []struct {
		name  string
		edit  func(*Report)
		field string
	}{
		{"docker over the socket", func(r *Report) { r.Plugin = PluginDocker }, "plugin"},
		{"unknown plugin", func(r *Report) { r.Plugin = "x" }, "plugin"},
		{"unknown verb", func(r *Report) { r.Verb = "NetworkDriver.Join" }, "verb"},
		{"long network", func(r *Report) { r.Network = strings.Repeat("n", MaxNetwork+1) }, "network"},
		{"2^63 ns", func(r *Report) { r.Duration = 1<<63 - 1 }, "dur"},
		{"an hour and a bit", func(r *Report) { r.Duration = MaxDuration + 1 }, "dur"},
		{"lock wait past the verb", func(r *Report) { r.LockWait = r.Duration + 1 }, "lockWait"},
		{"2^62 claims", func(r *Report) { r.Claims = 1 << 62 }, "claims"},
		{"claim failures", func(r *Report) { r.ClaimFailures = MaxCount + 1 }, "claimFailures"},
		{"2^40 etcd errors", func(r *Report) { r.EtcdErrors = 1 << 40 }, "etcdErrors"},
		{"code 1000", func(r *Report) { r.Code = MaxCode + 1 }, "code"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ok
			tt.edit(&r)
			err := Check(r)
			if !errors.Is(err, ErrOutOfBounds) || !strings.Contains(err.Error(), tt.field) {
				t.Errorf("Check = %v, want ErrOutOfBounds naming %s", err, tt.field)
			}
		})
	}
}

// listen binds a stream socket at dir's SocketPath with backlog, as the
// agent does, and returns its fd.
func listen(t testing.TB, dir string, backlog int) int {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: SocketPath(dir)}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, backlog); err != nil {
		t.Fatal(err)
	}
	return fd
}

// TestSendWithoutAgent: no socket, or a socket nobody listens on, and the
// report is refused at once, uncounted (no agent).
func TestSendWithoutAgent(t *testing.T) {
	dir := t.TempDir()
	if err := Send(dir, Report{Plugin: PluginMain, Verb: "ADD"}); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("Send without socket = %v, want ENOENT", err)
	}
	fd := listen(t, dir, 1)
	syscall.Close(fd) // the file stays, unbound: what kill -9 leaves
	if err := Send(dir, Report{Plugin: PluginMain, Verb: "ADD"}); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("Send to a dead socket = %v, want ECONNREFUSED", err)
	}
	if _, err := os.Stat(LostPath(dir)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lost counter without an agent: %v, want none created", err)
	}
}

// TestSendNeverWaits: an agent that stops accepting makes Send fail with
// EAGAIN once its backlog is full, never block; each report refused so is
// counted in LostPath, and those queued are whole.
func TestSendNeverWaits(t *testing.T) {
	dir := t.TempDir()
	const backlog = 16
	fd := listen(t, dir, backlog)
	if err := os.WriteFile(LostPath(dir), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	r := Report{Plugin: PluginMain, Verb: "ADD", Network: strings.Repeat("n", 200)}
	const sends = 100
	var queued, refused int
	for range sends {
		switch err := Send(dir, r); {
		case err == nil:
			queued++
		case errors.Is(err, syscall.EAGAIN):
			refused++
		default:
			t.Fatalf("Send = %v, want nil or EAGAIN", err)
		}
	}
	if queued < backlog || refused == 0 {
		t.Fatalf("%d queued, %d refused with a backlog of %d: want the backlog filled, then refusals", queued, refused, backlog)
	}
	if fi, err := os.Stat(LostPath(dir)); err != nil || fi.Size() != int64(refused) {
		t.Errorf("lost counter: %v, size %d; want %d (one byte per refused report)", err, fi.Size(), refused)
	}
	for i := range queued {
		c, _, err := syscall.Accept(fd)
		if err != nil {
			t.Fatalf("accept #%d: %v", i, err)
		}
		f := os.NewFile(uintptr(c), "report")
		b, err := io.ReadAll(f)
		f.Close()
		if got, derr := Decode(b); err != nil || derr != nil || got.Network != r.Network {
			t.Fatalf("queued report #%d = %+v, %v, %v", i, got, err, derr)
		}
	}
}

// TestNoDependencies: the plugins import this package, which must pull
// nothing but the standard library (no Prometheus client in a CNI plugin).
func TestNoDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, p := range strings.Fields(string(out)) {
		if p != "github.com/medianet/medianet/metrics/report" {
			t.Errorf("metrics/report depends on %s; keep it to the standard library", p)
		}
	}
	if filepath.Base(SocketPath("")) != SocketName || filepath.Dir(SocketPath("")) != DefaultDataDir {
		t.Errorf("SocketPath(\"\") = %s, want %s/%s", SocketPath(""), DefaultDataDir, SocketName)
	}
}

// BenchmarkSend: one report to a live agent socket (encoding, socket,
// connect, send, close), the whole cost a plugin pays per verb.
func BenchmarkSend(b *testing.B) {
	dir := b.TempDir()
	fd := listen(b, dir, Backlog)
	go func() {
		buf := make([]byte, MaxSize)
		for {
			c, _, err := syscall.Accept(fd)
			if err != nil {
				return
			}
			for {
				if n, err := syscall.Read(c, buf); n <= 0 || err != nil {
					break
				}
			}
			syscall.Close(c)
		}
	}()
	r := Report{Plugin: PluginMain, Verb: "ADD", Network: "media", Duration: 12 * time.Millisecond, LockWait: time.Millisecond}
	for b.Loop() {
		if err := Send(dir, r); err != nil && !errors.Is(err, syscall.EAGAIN) {
			b.Fatal(err)
		}
	}
}

// BenchmarkSendAgentStopped: Send to an agent that accepts nothing (it
// is stopped): reports queue in the backlog until it is full, then are
// refused and counted in LostPath; neither waits.
func BenchmarkSendAgentStopped(b *testing.B) {
	dir := b.TempDir()
	listen(b, dir, Backlog)
	if err := os.WriteFile(LostPath(dir), nil, 0o600); err != nil {
		b.Fatal(err)
	}
	r := Report{Plugin: PluginMain, Verb: "ADD", Network: "media", Duration: 12 * time.Millisecond, LockWait: time.Millisecond}
	var errs []error
	for b.Loop() {
		errs = append(errs, Send(dir, r))
	}
	queued, lost := 0, 0
	for _, err := range errs {
		if err == nil {
			queued++
		} else if errors.Is(err, syscall.EAGAIN) {
			lost++
		} else {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(queued), "queued")
	b.ReportMetric(float64(lost), "counted-lost")
}
