package dockertest

import (
	"archive/tar"
	"bytes"
	"io"
	"testing"
)

func TestBusyboxTar(t *testing.T) {
	b, err := BusyboxRootfs()
	if err != nil {
		t.Skipf("busybox: %v", err)
	}
	tr := tar.NewReader(bytes.NewReader(b))
	got := map[string]string{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("read tar: %v", err)
		}
		got[h.Name] = h.Linkname
	}
	for _, want := range []string{"bin/busybox", "bin/sh", "bin/sleep"} {
		if _, ok := got[want]; !ok {
			t.Errorf("image lacks %s", want)
		}
	}
	if got["bin/sh"] != "busybox" {
		t.Errorf("bin/sh: got link %q, want busybox", got["bin/sh"])
	}
}

func TestRunContainer(t *testing.T) {
	Require(t)
	id := Run(t, nil)
	out, err := Docker("exec", id, "sh", "-c", "echo hello")
	if err != nil || out != "hello" {
		t.Fatalf("docker exec: got %q, %v, want hello", out, err)
	}
	if pid, err := Pid(id); err != nil || pid == "0" {
		t.Errorf("Pid: got %q, %v, want a running PID", pid, err)
	}
}
