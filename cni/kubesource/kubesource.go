// Package kubesource plugs ipam/kubestore's block claims in the Kubernetes
// API into the cni package's IPAM verbs. It is a package of its own so
// that only medianet-ipam-kube links client-go: medianet-ipam and the
// medianet plugin run that program by exec for networks with
// ipam.kubernetes.
package kubesource

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/medianet/medianet/cni"
	"github.com/medianet/medianet/ipam"
	"github.com/medianet/medianet/ipam/kubestore"
)

// Source is a cni.Plugin Source: the kubernetes block source over the
// node's store st when c uses the Kubernetes API (cni.Config.
// UsesKubernetes), else the static one. The client connects lazily, so an
// ADD served from held blocks never contacts the API server.
func Source(_ context.Context, c *cni.Config, st ipam.Store) (ipam.BlockSource, func(), error) {
	if !c.UsesKubernetes() {
		return ipam.NewSource(&c.IPAM), func() {}, nil
	}
	cfg, err := ClientConfig(c.Net.IPAM.Kubernetes)
	if err != nil {
		return nil, nil, err
	}
	cli, err := kubestore.New(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("ipam.kubernetes: %w", err)
	}
	src, err := kubestore.NewSource(cli, &c.IPAM, st)
	if err != nil {
		return nil, nil, fmt.Errorf("ipam.kubernetes: %w", err)
	}
	return source{src}, func() {}, nil
}

// source adds Tidy, which the cni package calls after GC and after a DEL
// that emptied a block.
type source struct{ *kubestore.Source }

// Tidy runs the source's sync (kubestore.Source.SyncIdle); the API server
// being unreachable is no failure: the next Tidy catches up.
func (s source) Tidy(ctx context.Context, st ipam.Store) error {
	_, err := s.SyncIdle(ctx, st, time.Now())
	if errors.Is(err, kubestore.ErrUnavailable) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("ipam.kubernetes: %w", err)
	}
	return nil
}

// ClientConfig turns the "ipam.kubernetes" object into a
// kubestore.Config; errors wrap ipam.ErrConfig and name the field.
func ClientConfig(k *cni.KubernetesConf) (kubestore.Config, error) {
	cfg := kubestore.Config{Kubeconfig: k.Kubeconfig}
	var err error
	if cfg.RequestTimeout, err = duration("ipam.kubernetes.requestTimeout", k.RequestTimeout); err != nil {
		return cfg, err
	}
	if cfg.IdleRelease, err = duration("ipam.kubernetes.idleRelease", k.IdleRelease); err != nil {
		return cfg, err
	}
	return cfg, nil
}

func duration(field, v string) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%s %q is not a duration such as \"2s\": %w", field, v, ipam.ErrConfig)
	}
	return d, nil
}

// Sync runs the sync of c's kubernetes network over the node's store st
// once (kubestore.Source.SyncIdle): for the node agent, which syncs
// whether or not the runtime sends GC.
func Sync(ctx context.Context, c *cni.Config, st ipam.Store, now time.Time) (kubestore.SyncResult, error) {
	if !c.UsesKubernetes() {
		return kubestore.SyncResult{}, fmt.Errorf("network %q has no ipam.kubernetes: %w", c.IPAM.Network, ipam.ErrConfig)
	}
	src, _, err := Source(ctx, c, st)
	if err != nil {
		return kubestore.SyncResult{}, err
	}
	return src.(source).SyncIdle(ctx, st, now)
}
