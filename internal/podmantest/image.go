package podmantest

import (
	"archive/tar"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// BusyboxBinary is the static busybox the image is made of.
var BusyboxBinary = "/usr/bin/busybox"

// busyboxApplets get a symlink in /bin of the image.
var busyboxApplets = []string{
	"sh", "ash", "ping", "ping6", "ip", "ifconfig", "route", "sleep", "udhcpc",
	"cat", "ls", "echo", "hostname", "nc", "wget", "arping", "true", "false",
	"ps", "kill", "grep", "sed", "awk", "env", "id", "mkdir", "rm", "touch", "date",
}

var importMu sync.Mutex

// ImportBusybox imports BusyboxImage unless podman already has it,
// skipping the test when the busybox binary is absent.
func (h *Harness) ImportBusybox() {
	h.t.Helper()
	importMu.Lock()
	defer importMu.Unlock()
	if _, err := h.Run("image", "exists", BusyboxImage); err == nil {
		return
	}
	if _, err := os.Stat(BusyboxBinary); err != nil {
		h.t.Skipf("podmantest: %s missing (install busybox-static): %v", BusyboxBinary, err)
	}
	tarball := filepath.Join(h.t.TempDir(), "busybox.tar")
	if err := writeRootfs(tarball, BusyboxBinary); err != nil {
		h.t.Fatalf("podmantest: busybox rootfs: %v", err)
	}
	h.MustRun("import", "--change", `CMD ["/bin/sh"]`, tarball, BusyboxImage)
}

// writeRootfs writes a tar of a minimal root filesystem: /bin/busybox,
// applet symlinks, and the empty directories a runtime mounts over.
func writeRootfs(path, busybox string) (retErr error) {
	bin, err := os.ReadFile(busybox)
	if err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer func() {
		if err := f.Close(); retErr == nil {
			retErr = err
		}
	}()
	tw := tar.NewWriter(f)
	now := time.Now()
	for _, d := range []string{"bin", "dev", "etc", "proc", "sys", "tmp", "run", "root", "var"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: now}); err != nil {
			return err
		}
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "bin/busybox", Mode: 0o755, Size: int64(len(bin)), ModTime: now}); err != nil {
		return err
	}
	if _, err := tw.Write(bin); err != nil {
		return err
	}
	for _, a := range busyboxApplets {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + a, Linkname: "busybox", ModTime: now}); err != nil {
			return fmt.Errorf("applet %s: %w", a, err)
		}
	}
	passwd := []byte("root:x:0:0:root:/root:/bin/sh\n")
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "etc/passwd", Mode: 0o644, Size: int64(len(passwd)), ModTime: now}); err != nil {
		return err
	}
	if _, err := tw.Write(passwd); err != nil {
		return err
	}
	return tw.Close()
}
