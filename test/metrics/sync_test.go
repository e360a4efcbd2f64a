package metrics_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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
// plays no part. Against an etcd with TLS client certificates and a
// password, the agent reads the files ipam.etcd names (passwordFile: the
// record holds its path, not the password).
func TestAgentSyncsRecordedNetworkAfterDEL(t *testing.T) {
	etcdtest.SkipUnlessAvailable(t)
	for _, secured := range []bool{false, true} {
		t.Run(fmt.Sprintf("secured=%t", secured), func(t *testing.T) { agentSyncsAfterDEL(t, secured) })
	}
}

func agentSyncsAfterDEL(t *testing.T, secured bool) {
	srv := etcdtest.Start(t, etcdtest.Options{TLS: secured, Auth: secured})
	dataDir := t.TempDir()
	etcdKeys := ""
	cfg := etcdstore.Config{Endpoints: srv.Endpoints()}
	if secured {
		pw := filepath.Join(t.TempDir(), "password")
		if err := os.WriteFile(pw, []byte(srv.Password+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		etcdKeys = fmt.Sprintf(`,"caFile":%q,"certFile":%q,"keyFile":%q,"username":%q,"passwordFile":%q`,
			srv.TLS.CAFile, srv.TLS.ClientCert, srv.TLS.ClientKey, srv.User, pw)
		cfg.CAFile, cfg.CertFile, cfg.KeyFile, cfg.Username, cfg.Password = srv.TLS.CAFile, srv.TLS.ClientCert, srv.TLS.ClientKey, srv.User, srv.Password
	}
	conf := fmt.Appendf(nil, `{"cniVersion":"1.1.0","name":"nad-only","type":"macvlan","ipam":{"type":"medianet-ipam",
		"subnet":"10.95.0.0/24","blockSize":28,"dataDir":%q,"etcd":{"endpoints":[%q],"requestTimeout":"2s","idleRelease":"-1s"%s}}}`,
		dataDir, srv.Endpoints()[0], etcdKeys)
	startSyncAgent(t, dataDir, t.TempDir(), "--node", "node-a", "--etcd-sync-interval", "1h")
	for _, verb := range []string{"ADD", "DEL"} {
		c := cniCall{plugin: bin("medianet-ipam"), verb: verb, cid: "pod-1", conf: conf, env: []string{"MEDIANET_NODE=node-a"}}
		if got := c.run(t); got.Exit != 0 {
			t.Fatalf("%s: %v", verb, got)
		}
	}
	if secured {
		rec, err := os.ReadFile(filepath.Join(dataDir, "networks", "nad-only.json"))
		if err != nil || !strings.Contains(string(rec), "passwordFile") || strings.Contains(string(rec), srv.Password) {
			t.Fatalf("record: %v: %s; want passwordFile's path and no password", err, rec)
		}
	}
	cli, err := etcdstore.New(cfg)
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
