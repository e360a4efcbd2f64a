// Package metrics_test runs medianet's metrics end to end: the real
// medianet, medianet-ipam and medianetd binaries, CNI verbs on a LAN of
// network namespaces (internal/nstest), a real etcd (internal/etcdtest)
// and a real Prometheus (internal/promtest) scraping the node agent and
// loading the alert rules of docs/operations.md; and benchmarks of what
// metrics cost an ADD.
package metrics_test

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/medianet/medianet/internal/cnitest"
	"github.com/medianet/medianet/metrics/report"
)

var bins string

func TestMain(m *testing.M) {
	os.Exit(cnitest.Main(m, &bins, "medianet", "medianet-ipam", "medianetd"))
}

func bin(name string) string { return filepath.Join(bins, name) }

// repoFile returns the path of a file of the repository.
func repoFile(t testing.TB, rel string) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		t.Fatalf("go list -m: %v", err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), rel)
}

// agent is a medianetd node agent run for a test.
type agent struct {
	pid     int    // medianetd's process
	addr    string // host:port of /metrics
	dataDir string
	log     string
}

// startAgent runs `medianetd --metrics-listen 127.0.0.1:PORT --data-dir
// dataDir args...` and waits until /metrics answers and the report socket
// exists. It is stopped with SIGTERM when the test ends.
func startAgent(t testing.TB, dataDir string, args ...string) *agent {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	a := &agent{addr: addr, dataDir: dataDir, log: filepath.Join(t.TempDir(), "medianetd.log")}
	logf, err := os.Create(a.log)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin("medianetd"), append([]string{"--metrics-listen", addr, "--data-dir", dataDir}, args...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start medianetd: %v", err)
	}
	a.pid = cmd.Process.Pid
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logf.Close()
		if t.Failed() {
			out, _ := os.ReadFile(a.log)
			t.Logf("medianetd log:\n%s", out)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		// Listening is enough: with --web.config.file, plain HTTP is
		// refused; the tests scrape as they need.
		_, serr := os.Stat(report.SocketPath(dataDir))
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			if serr == nil {
				return a
			}
		}
		select {
		case <-done:
			out, _ := os.ReadFile(a.log)
			t.Fatalf("medianetd exited: %s", out)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("medianetd agent not serving on %s after 10s", addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// scrape returns the agent's /metrics text.
func (a *agent) scrape(t testing.TB) string {
	t.Helper()
	return scrapeAddr(t, a.addr)
}

// scrapeAddr returns the /metrics text served at addr.
func scrapeAddr(t testing.TB, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scrape %s: %v", addr, err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return b.String()
}

// cniCall is one plugin execution as a runtime makes it.
type cniCall struct {
	plugin, verb, cid, netns, args string
	host                           string   // netns path the plugin runs in (nsenter); "" for this one
	env                            []string // extra environment
	conf                           []byte
}

// run executes c and returns its outcome; only a failure to start is fatal.
func (c cniCall) run(t testing.TB) cnitest.Call {
	t.Helper()
	var cmd *exec.Cmd
	if c.host != "" {
		cmd = exec.Command("nsenter", "--net="+c.host, c.plugin)
	} else {
		cmd = exec.Command(c.plugin)
	}
	netns := c.netns
	if netns == "" {
		netns = "/var/run/netns/medianet-metrics-none" // IPAM only: never entered
	}
	cmd.Env = append([]string{"CNI_COMMAND=" + c.verb, "CNI_CONTAINERID=" + c.cid, "CNI_NETNS=" + netns,
		"CNI_IFNAME=eth0", "CNI_ARGS=" + c.args, "CNI_PATH=" + bins, "PATH=/usr/sbin:/usr/bin:/sbin:/bin"}, c.env...)
	cmd.Stdin = bytes.NewReader(c.conf)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if _, isExit := err.(*exec.ExitError); err != nil && !isExit {
		t.Fatalf("run %s %s: %v", c.plugin, c.verb, err)
	}
	return cnitest.Call{Stdout: out.String(), Stderr: errb.String(), Exit: cmd.ProcessState.ExitCode()}
}

// docRules writes the alert rules of docs/operations.md (its YAML block
// starting with "groups:") to a file and returns its path.
func docRules(t testing.TB) string {
	t.Helper()
	f, err := os.Open(repoFile(t, "docs/operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rules strings.Builder
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case !in && strings.TrimSpace(line) == "```yaml":
			in = true
			rules.Reset()
		case in && strings.TrimSpace(line) == "```":
			in = false
			if strings.HasPrefix(rules.String(), "groups:") {
				path := filepath.Join(t.TempDir(), "medianet-rules.yaml")
				if err := os.WriteFile(path, []byte(rules.String()), 0o644); err != nil {
					t.Fatal(err)
				}
				return path
			}
		case in:
			fmt.Fprintln(&rules, line)
		}
	}
	t.Fatalf("docs/operations.md has no ```yaml block starting with groups:")
	return ""
}

// wait polls cond until it holds or timeout passes.
func wait(t testing.TB, what string, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s after %s: %s", what, timeout, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
