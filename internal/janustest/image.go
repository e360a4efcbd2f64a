package janustest

import (
	"archive/tar"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// Image is the tag of the imported Janus image.
const Image = "medianet/janus:test"

// Binary is the janus binary the image is built from (Debian's package).
const Binary = "/usr/bin/janus"

// moduleDir is where Debian's janus package keeps plugins and transports.
const moduleDir = "/usr/lib/x86_64-linux-gnu/janus"

// Modules are the plugins and transports the image holds (the folders
// janus.jcfg names contain nothing else, so Janus loads only these).
var Modules = []string{
	"plugins/libjanus_echotest.so",
	"plugins/libjanus_streaming.so",
	"transports/libjanus_http.so",
}

// libDir is the multiarch library directory.
const libDir = "/usr/lib/x86_64-linux-gnu"

// nssModules are the NSS modules Debian's libsrtp2 (built on NSS) loads
// with dlopen when Janus initialises SRTP; ldd cannot see them.
var nssModules = []string{"libsoftokn3.so", "libfreebl3.so", "libfreeblpriv3.so", "libnssdbm3.so"}

// ConfDir is where the image expects its configuration: Run bind-mounts
// a directory Config.Write filled there.
const ConfDir = "/etc/janus"

// entrypoint starts the RTP feeder of the Streaming mountpoint, then Janus
// as the container's main process.
const entrypoint = "/bin/rtpfeed -to 127.0.0.1:" + feedPortStr + " & exec /usr/bin/janus -C " + ConfDir + "/janus.jcfg -F " + ConfDir

// Require skips t unless Debian's janus package and busybox are installed.
func Require(t testing.TB) {
	t.Helper()
	for _, p := range append([]string{Binary, "/usr/bin/busybox"}, modulePaths()...) {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("janustest: %s not installed (Debian packages janus and busybox-static)", p)
		}
	}
	if _, err := exec.LookPath("ldd"); err != nil {
		t.Skip("janustest: ldd not installed (libc-bin)")
	}
}

func modulePaths() []string {
	var out []string
	for _, m := range Modules {
		out = append(out, filepath.Join(moduleDir, m))
	}
	return out
}

// Rootfs builds the image's root file system as a tarball: janus, its
// modules, every library ldd names for them (at the path ldd gives),
// busybox as /bin/sh, and the rtpfeed binary at feeder.
func Rootfs(feeder string) ([]byte, error) {
	files := map[string]string{ // path in the image -> file on the host
		"usr/bin/janus": Binary,
		"bin/busybox":   "/usr/bin/busybox",
		"bin/rtpfeed":   feeder,
	}
	objects := append([]string{Binary}, modulePaths()...)
	for _, n := range nssModules {
		n = filepath.Join(libDir, n)
		if _, err := os.Stat(n); err != nil {
			return nil, fmt.Errorf("janustest: %s (libnss3): libsrtp2 loads it: %w", n, err)
		}
		files[strings.TrimPrefix(n, "/")] = n
		objects = append(objects, n)
	}
	for _, m := range Modules {
		files[strings.TrimPrefix(filepath.Join(moduleDir, m), "/")] = filepath.Join(moduleDir, m)
	}
	for _, o := range objects {
		libs, err := Libraries(o)
		if err != nil {
			return nil, err
		}
		for _, l := range libs {
			files[strings.TrimPrefix(l, "/")] = l
		}
	}
	return buildTar(files, []string{"tmp/", "proc/", "sys/", "dev/", "etc/janus/", "var/lib/janus/"},
		map[string]string{"bin/sh": "busybox"})
}

// Libraries lists the shared libraries ldd resolves for an ELF object,
// the dynamic loader included.
func Libraries(object string) ([]string, error) {
	out, err := exec.Command("ldd", object).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("janustest: ldd %s: %w: %s", object, err, out)
	}
	var libs []string
	for line := range strings.SplitSeq(string(out), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 3 && f[1] == "=>" && strings.HasPrefix(f[2], "/"):
			libs = append(libs, f[2])
		case len(f) >= 1 && strings.HasPrefix(f[0], "/"):
			libs = append(libs, f[0])
		case strings.Contains(line, "not found"):
			return nil, fmt.Errorf("janustest: ldd %s: %s", object, strings.TrimSpace(line))
		}
	}
	return libs, nil
}

// buildTar writes dirs, then files (content read through symlinks, so
// each is a regular file), then symlinks.
func buildTar(files map[string]string, dirs []string, links map[string]string) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	made := map[string]bool{}
	mkdir := func(d string) error {
		if d == "." || d == "" || made[d] {
			return nil
		}
		made[d] = true
		return tw.WriteHeader(&tar.Header{Name: d + "/", Typeflag: tar.TypeDir, Mode: 0o755})
	}
	var parents func(p string) error
	parents = func(p string) error {
		d := filepath.Dir(p)
		if d == "." || made[d] {
			return nil
		}
		if err := parents(d); err != nil {
			return err
		}
		return mkdir(d)
	}
	for _, d := range dirs {
		d = strings.TrimSuffix(d, "/")
		if err := parents(d); err != nil {
			return nil, err
		}
		if err := mkdir(d); err != nil {
			return nil, err
		}
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		data, err := os.ReadFile(files[n])
		if err != nil {
			return nil, fmt.Errorf("janustest: read %s: %w", files[n], err)
		}
		if err := parents(n); err != nil {
			return nil, err
		}
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o755, Size: int64(len(data))}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	for n, target := range links {
		if err := tw.WriteHeader(&tar.Header{Name: n, Typeflag: tar.TypeSymlink, Linkname: target, Mode: 0o777}); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// BuildFeeder builds internal/cmd/rtpfeed, statically, into dir and
// returns its path.
func BuildFeeder(dir string) (string, error) {
	out := filepath.Join(dir, "rtpfeed")
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, "github.com/medianet/medianet/internal/cmd/rtpfeed")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("janustest: go build rtpfeed: %w: %s", err, b)
	}
	return out, nil
}

// Import builds the image and loads it with docker import through the
// docker CLI arguments given (e.g. "-H", "unix:///path/docker.sock").
func Import(dir string, docker ...string) error {
	return ImportWith(dir, func(args ...string) *exec.Cmd {
		return exec.Command("docker", append(append([]string{}, docker...), args...)...)
	})
}

// ImportWith builds the image and loads it with the import command of the
// container CLI cli makes (docker's or podman's: cli("import", ...) is
// run with the root file system on its standard input).
func ImportWith(dir string, cli func(args ...string) *exec.Cmd) error {
	feeder, err := BuildFeeder(dir)
	if err != nil {
		return err
	}
	rootfs, err := Rootfs(feeder)
	if err != nil {
		return err
	}
	cmd := cli("import",
		"--change", "ENV LD_LIBRARY_PATH=/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu",
		"--change", fmt.Sprintf(`CMD ["/bin/sh", "-c", %q]`, entrypoint), "-", Image)
	cmd.Stdin = bytes.NewReader(rootfs)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("janustest: %s import %s: %w: %s", filepath.Base(cmd.Path), Image, err, out)
	}
	return nil
}
