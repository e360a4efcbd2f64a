package doctor_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/medianet/medianet/doctor"
)

// TestStatusFollowsDoctor: the node agent (medianetd --cni-conf-dir
// --doctor-interval) checks the parent of a medianet network and keeps
// the report; CNI STATUS turns not ready (code 50, with the doctor's
// reason) while the LAN drops frames from new MACs, and ready again once
// the agent finds them passing.
func TestStatusFollowsDoctor(t *testing.T) {
	w := newWorld(t)
	dataDir, confDir := t.TempDir(), t.TempDir()
	conf := fmt.Sprintf(`{"cniVersion":"1.1.0","name":"media","type":"medianet","master":%q,
  "ipam":{"type":"medianet-ipam","subnet":"10.89.0.0/24","gateway":%q,"node":"node-a","dataDir":%q}}`, w.lan.Master, gw4, dataDir)
	if err := os.WriteFile(filepath.Join(confDir, "10-media.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out := w.status(t, conf); code != 0 {
		t.Fatalf("STATUS before any doctor record: exit %d: %s", code, out)
	}
	dropUnknown(t, w)
	w.startAgent(t, confDir, dataDir)
	w.waitRecord(t, dataDir, doctor.Dropped)
	code, out := w.status(t, conf)
	var cniErr struct {
		Code uint   `json:"code"`
		Msg  string `json:"msg"`
	}
	if err := json.Unmarshal([]byte(out), &cniErr); code == 0 || err != nil || cniErr.Code != 50 ||
		!strings.Contains(cniErr.Msg, "dropped") || !strings.Contains(cniErr.Msg, "Forged transmits") {
		t.Fatalf("STATUS while frames are dropped: exit %d, %s; want CNI error 50 with the doctor's reason and advice", code, out)
	}
	if _, err := w.lan.Switch.Exec("nft", "delete", "table", "bridge", "nstest"); err != nil {
		t.Fatal(err)
	}
	w.waitRecord(t, dataDir, doctor.Pass)
	if code, out := w.status(t, conf); code != 0 {
		t.Fatalf("STATUS after the LAN was fixed: exit %d: %s", code, out)
	}
}

// status runs the medianet plugin's STATUS in the host namespace.
func (w *world) status(t *testing.T, conf string) (int, string) {
	t.Helper()
	cmd := exec.Command("nsenter", "--net="+w.lan.Host.Path, filepath.Join(binDir, "medianet"))
	cmd.Env = []string{"CNI_COMMAND=STATUS", "CNI_PATH=" + binDir, "PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.Stdin = strings.NewReader(conf)
	var out bytes.Buffer
	cmd.Stdout = &out // the CNI error; the plugin's log goes to stderr
	_ = cmd.Run()
	return cmd.ProcessState.ExitCode(), out.String()
}

// startAgent runs medianetd as the node agent in the host namespace,
// doctoring every second, until the test ends.
func (w *world) startAgent(t *testing.T, confDir, dataDir string) {
	t.Helper()
	cmd := exec.Command("nsenter", "--net="+w.lan.Host.Path, filepath.Join(binDir, "medianetd"),
		"--socket", "", "--cni-conf-dir", confDir, "--data-dir", dataDir, "--node", "node-a", "--doctor-interval", "1s")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("medianetd:\n%s", logs.String())
		}
	})
}

// waitRecord waits, at most 30 s, until the agent's record of the parent
// says want.
func (w *world) waitRecord(t *testing.T, dataDir string, want doctor.Verdict) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		rec, ok, err := doctor.ReadRecord(dataDir, w.lan.Master)
		if err != nil {
			t.Fatal(err)
		}
		if ok && rec.Report.Verdict == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the agent's record never said %s (last: %+v, present %v)", want, rec.Report, ok)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
