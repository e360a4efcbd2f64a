package janustest

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"
)

func TestStatsLossAndWrap(t *testing.T) {
	tests := []struct {
		name          string
		seqs          []uint16
		packets, span int
	}{
		{"contiguous", []uint16{10, 11, 12, 13}, 4, 4},
		{"one lost", []uint16{10, 11, 13, 14}, 4, 5},
		{"wraps", []uint16{65534, 65535, 0, 1}, 4, 4},
		{"wraps with a loss", []uint16{65535, 1, 2}, 3, 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &stats{counting: true, window: time.Hour, started: make(chan struct{})}
			at := time.Unix(1000, 0)
			for i, q := range tc.seqs {
				s.add(&rtp.Packet{Header: rtp.Header{SequenceNumber: q, Timestamp: uint32(160 * i)}}, at.Add(time.Duration(i)*20*time.Millisecond), 8000)
			}
			if s.n != tc.packets || int(s.maxSeq-s.minSeq+1) != tc.span {
				t.Errorf("got %d packets over %d sequence numbers, want %d over %d", s.n, s.maxSeq-s.minSeq+1, tc.packets, tc.span)
			}
			if s.jitter > 1e-6 {
				t.Errorf("jitter %v for packets sent and received 20 ms apart, want 0", s.jitter)
			}
		})
	}
}

func TestStatsWindow(t *testing.T) {
	s := &stats{counting: true, window: time.Second, started: make(chan struct{})}
	at := time.Unix(1000, 0)
	for i := range 100 {
		s.add(&rtp.Packet{Header: rtp.Header{SequenceNumber: uint16(i)}}, at.Add(time.Duration(i)*20*time.Millisecond), 8000)
	}
	if s.n != 51 { // 0 ms to 1000 ms inclusive
		t.Errorf("counted %d packets in a 1 s window at 50 a second, want 51", s.n)
	}
}

func TestConfigWrite(t *testing.T) {
	dir := t.TempDir()
	if err := (Config{HTTPPort: 0}).Write(dir); err == nil || !strings.Contains(err.Error(), "HTTPPort") {
		t.Errorf("port 0: got %v, want an error naming HTTPPort", err)
	}
	if err := (Config{HTTPPort: 8088, Sections: "nat: {\n}\n"}).Write(dir); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "janus.jcfg"))
	if err != nil || !strings.Contains(string(raw), "nat: {") {
		t.Errorf("janus.jcfg lacks the given sections: %v %q", err, raw)
	}
	http, _ := os.ReadFile(filepath.Join(dir, "janus.transport.http.jcfg"))
	if !strings.Contains(string(http), "port = 8088") {
		t.Errorf("http transport config lacks the port: %q", http)
	}
}

func TestBuildTar(t *testing.T) {
	src := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(src, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	raw, err := buildTar(map[string]string{"usr/lib/a/b.so": src}, []string{"tmp/"}, map[string]string{"bin/sh": "busybox"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	tr := tar.NewReader(bytes.NewReader(raw))
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		names = append(names, h.Name)
	}
	want := "tmp/ usr/ usr/lib/ usr/lib/a/ usr/lib/a/b.so bin/sh"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("entries: got %q, want %q (parents before children)", got, want)
	}
	if _, err := buildTar(map[string]string{"x": "/nonexistent/file"}, nil, nil); err == nil {
		t.Error("a missing source file: no error")
	}
}
