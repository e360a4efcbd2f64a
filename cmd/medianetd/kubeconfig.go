package main

import (
	"context"
	"log/slog"
	"time"

	nodeagent "github.com/medianet/medianet/agent"
)

// kubeconfigInterval is how often the agent looks for a rotated
// ServiceAccount token; kubelet rotates one at 80% of a lifetime of ten
// minutes at least.
const kubeconfigInterval = time.Minute

// startKubeconfig writes the CNI plugins' kubeconfig from this pod's
// ServiceAccount (agent.WriteKubeconfig) now, failing when it cannot, and
// then every kubeconfigInterval until ctx ends, so the token it names is
// always current.
func startKubeconfig(ctx context.Context, path string, log *slog.Logger) error {
	sa := nodeagent.InCluster()
	if _, err := nodeagent.WriteKubeconfig(sa, path); err != nil {
		return err
	}
	log.Info("kubeconfig for the CNI plugins written", "path", path)
	go func() {
		tick := time.NewTicker(kubeconfigInterval)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			changed, err := nodeagent.WriteKubeconfig(sa, path)
			switch {
			case err != nil:
				log.Error("kubeconfig for the CNI plugins not refreshed", "path", path, "err", err)
			case changed:
				log.Info("kubeconfig for the CNI plugins refreshed (token rotated)", "path", path)
			}
		}
	}()
	return nil
}
