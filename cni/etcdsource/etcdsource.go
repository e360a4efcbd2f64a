// Package etcdsource plugs ipam/etcdstore's block claims into the cni
// package's IPAM verbs. It is a package of its own so that only the
// programs that claim blocks (medianet-ipam) link the etcd client: the main
// plugin stays small and starts fast, and runs medianet-ipam by exec for a
// network configured with ipam.etcd.
package etcdsource

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/medianet/medianet/cni"
	"github.com/medianet/medianet/ipam"
	"github.com/medianet/medianet/ipam/etcdstore"
)

// Source is a cni.Plugin Source: the etcd block source over the node's
// store st when c uses etcd (cni.Config.UsesEtcd), else the static one.
// The etcd client connects lazily, so an ADD served from held blocks never
// contacts etcd.
func Source(_ context.Context, c *cni.Config, st ipam.Store) (ipam.BlockSource, func(), error) {
	if !c.UsesEtcd() {
		return ipam.NewSource(&c.IPAM), func() {}, nil
	}
	cfg, err := ClientConfig(c.Net.IPAM.Etcd)
	if err != nil {
		return nil, nil, err
	}
	cli, err := etcdstore.New(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("ipam.etcd: %w", err)
	}
	src, err := etcdstore.NewSource(cli, &c.IPAM, st)
	if err != nil {
		cli.Close()
		return nil, nil, fmt.Errorf("ipam.etcd: %w", err)
	}
	return source{src}, func() { cli.Close() }, nil
}

// source adds Tidy, which the cni package calls after GC and after a DEL
// that emptied a block.
type source struct{ *etcdstore.Source }

// Tidy runs the source's sync (etcdstore.Source.SyncIdle): usage marks
// published, blocks empty for their idle time given back, blocks lost to
// another node recorded in the store (STATUS reports them, `medianetctl
// ipam check` lists who is in them). etcd being unreachable is no failure:
// the next Tidy catches up.
func (s source) Tidy(ctx context.Context, st ipam.Store) error {
	_, err := s.SyncIdle(ctx, st, time.Now())
	if errors.Is(err, etcdstore.ErrUnavailable) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("ipam.etcd: %w", err)
	}
	return nil
}

// ClientConfig turns the "ipam.etcd" object into an etcdstore.Config;
// errors wrap ipam.ErrConfig and name the field.
func ClientConfig(e *cni.EtcdConf) (etcdstore.Config, error) {
	cfg := etcdstore.Config{
		Endpoints: e.Endpoints, Prefix: e.Prefix,
		CAFile: e.CAFile, CertFile: e.CertFile, KeyFile: e.KeyFile,
		Username: e.Username, Password: e.Password,
	}
	if e.PasswordFile != "" {
		if e.Password != "" {
			return cfg, configErr("ipam.etcd.password and ipam.etcd.passwordFile are both set: keep one")
		}
		b, err := os.ReadFile(e.PasswordFile)
		if err != nil {
			return cfg, configErr("ipam.etcd.passwordFile: %v", err)
		}
		cfg.Password = strings.TrimRight(string(b), "\r\n")
	}
	var err error
	if cfg.RequestTimeout, err = duration("ipam.etcd.requestTimeout", e.RequestTimeout); err != nil {
		return cfg, err
	}
	if cfg.IdleRelease, err = duration("ipam.etcd.idleRelease", e.IdleRelease); err != nil {
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
		return 0, configErr("%s %q is not a duration such as \"2s\"", field, v)
	}
	return d, nil
}

func configErr(format string, a ...any) error {
	return fmt.Errorf(format+": %w", append(a, ipam.ErrConfig)...)
}

// Sync runs etcdstore.Source.SyncIdle for conf (which must use etcd) over
// the node's store st: what GC's Tidy does, with its result, for
// medianetctl and the node agent.
func Sync(ctx context.Context, conf *cni.Config, st ipam.Store, now time.Time) (etcdstore.SyncResult, error) {
	src, done, err := Source(ctx, conf, st)
	if err != nil {
		return etcdstore.SyncResult{}, err
	}
	defer done()
	s, ok := src.(source)
	if !ok {
		return etcdstore.SyncResult{}, configErr("network %q has no ipam.etcd", conf.IPAM.Network)
	}
	return s.SyncIdle(ctx, st, now)
}
