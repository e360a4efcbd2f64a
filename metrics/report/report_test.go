package report

import (
	"errors"
	"net"
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

// TestSendWithoutAgent: no socket, or a socket nobody reads, and the
// report is refused at once.
func TestSendWithoutAgent(t *testing.T) {
	dir := t.TempDir()
	if err := Send(dir, Report{Plugin: PluginMain, Verb: "ADD"}); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("Send without socket = %v, want ENOENT", err)
	}
	l, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: SocketPath(dir), Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	l.Close() // the file stays, unbound
	if err := Send(dir, Report{Plugin: PluginMain, Verb: "ADD"}); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("Send to a dead socket = %v, want ECONNREFUSED", err)
	}
}

// TestSendNeverWaits: an agent that stops reading makes Send fail with
// EAGAIN once its queue is full, never block.
func TestSendNeverWaits(t *testing.T) {
	dir := t.TempDir()
	l, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: SocketPath(dir), Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	r := Report{Plugin: PluginMain, Verb: "ADD", Network: strings.Repeat("n", 200)}
	var sent int
	for ; sent < 100000; sent++ {
		if err := Send(dir, r); err != nil {
			if !errors.Is(err, syscall.EAGAIN) {
				t.Fatalf("Send #%d = %v, want nil or EAGAIN", sent, err)
			}
			break
		}
	}
	if sent == 100000 {
		t.Fatalf("100000 reports queued without EAGAIN: the queue never filled")
	}
	buf := make([]byte, MaxSize)
	n, err := l.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := Decode(buf[:n]); err != nil || got.Network != r.Network {
		t.Errorf("first queued report = %+v, %v", got, err)
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
// sendto, close), the whole cost a plugin pays per verb.
func BenchmarkSend(b *testing.B) {
	dir := b.TempDir()
	l, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: SocketPath(dir), Net: "unixgram"})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	go func() {
		buf := make([]byte, MaxSize)
		for {
			if _, err := l.Read(buf); err != nil {
				return
			}
		}
	}()
	r := Report{Plugin: PluginMain, Verb: "ADD", Network: "media", Duration: 12 * time.Millisecond, LockWait: time.Millisecond}
	for b.Loop() {
		if err := Send(dir, r); err != nil && !errors.Is(err, syscall.EAGAIN) {
			b.Fatal(err)
		}
	}
}
