package metrics_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/medianet/medianet/internal/etcdtest"
	"github.com/medianet/medianet/ipam/etcdstore"
	"github.com/medianet/medianet/metrics/report"
)

// startSyncAgent runs `medianetd --data-dir dataDir --cni-conf-dir
// confDir args...` without --metrics-listen and waits until the report
// socket exists. It is stopped with SIGTERM when the test ends.
func startSyncAgent(t *testing.T, dataDir, confDir string, args ...string) {
	t.Helper()
	log := filepath.Join(t.TempDir(), "medianetd.log")
	logf, err := os.Create(log)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin("medianetd"), append([]string{"--data-dir", dataDir, "--cni-conf-dir", confDir}, args...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		<-done
		logf.Close()
		if t.Failed() {
			out, _ := os.ReadFile(log)
			t.Logf("medianetd log:\n%s", out)
		}
	})
	wait(t, "report socket of the agent", 10*time.Second, func() (bool, string) {
		_, err := os.Stat(report.SocketPath(dataDir))
		return err == nil, fmt.Sprint(err)
	})
}

// TestAgentSyncsRecordedNetworkAfterDEL: a network no CNI configuration
// file names (a Multus NetworkAttachmentDefinition's, say) is synced by
// a node agent run without --metrics-listen, soon after the DEL that
// emptied its block: the plugin recorded the network in the data
// directory, and its report kicked the sync. The agent's timer (an hour)
// plays no part.
func TestAgentSyncsRecordedNetworkAfterDEL(t *testing.T) {
	etcdtest.SkipUnlessAvailable(t)
	srv := etcdtest.Start(t, etcdtest.Options{})
	dataDir := t.TempDir()
	conf := fmt.Appendf(nil, `{"cniVersion":"1.1.0","name":"nad-only","type":"macvlan","ipam":{"type":"medianet-ipam",
		"subnet":"10.95.0.0/24","blockSize":28,"dataDir":%q,"etcd":{"endpoints":[%q],"requestTimeout":"2s","idleRelease":"-1s"}}}`,
		dataDir, srv.Endpoints()[0])
	startSyncAgent(t, dataDir, t.TempDir(), "--node", "node-a", "--etcd-sync-interval", "1h")
	for _, verb := range []string{"ADD", "DEL"} {
		c := cniCall{plugin: bin("medianet-ipam"), verb: verb, cid: "pod-1", conf: conf, env: []string{"MEDIANET_NODE=node-a"}}
		if got := c.run(t); got.Exit != 0 {
			t.Fatalf("%s: %v", verb, got)
		}
	}
	cli, err := etcdstore.New(etcdstore.Config{Endpoints: srv.Endpoints()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	wait(t, "the emptied block marked empty in etcd by the agent's sync", 20*time.Second, func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		bcs, err := cli.Claims(ctx, "nad-only", "")
		if err != nil || len(bcs) != 1 {
			return false, fmt.Sprintf("claims %+v, %v; want one", bcs, err)
		}
		return bcs[0].Claim.Empty, fmt.Sprintf("claim of %s: %+v", bcs[0].Block, bcs[0].Claim)
	})
}
