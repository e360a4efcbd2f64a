package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/medianet/medianet/dockerplugin"
	"github.com/medianet/medianet/ipam/etcdstore"
)

// etcdFlags are the --etcd-* flags, named as medianetctl's and matching
// the CNI configuration's ipam.etcd keys.
type etcdFlags struct {
	endpoints, prefix, ca, cert, key, user string
	syncInterval, idleRelease              time.Duration
}

func (e *etcdFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&e.endpoints, "etcd-endpoints", "", "etcd client URLs, comma-separated: claim per-host blocks in etcd (ipam.etcd.endpoints)")
	fs.StringVar(&e.prefix, "etcd-prefix", etcdstore.DefaultPrefix, "etcd key prefix (ipam.etcd.prefix)")
	fs.StringVar(&e.ca, "etcd-ca", "", "CA file verifying etcd's certificate (ipam.etcd.caFile)")
	fs.StringVar(&e.cert, "etcd-cert", "", "client certificate file (ipam.etcd.certFile)")
	fs.StringVar(&e.key, "etcd-key", "", "client key file (ipam.etcd.keyFile)")
	fs.StringVar(&e.user, "etcd-user", "", "etcd user; the password comes from env MEDIANET_ETCD_PASSWORD (ipam.etcd.username)")
	fs.DurationVar(&e.syncInterval, "etcd-sync-interval", time.Minute, "how often to mark empty blocks in etcd and give back idle ones")
	fs.DurationVar(&e.idleRelease, "etcd-idle-release", etcdstore.DefaultIdleRelease, "how long a block stays empty before it is given back; negative: never (ipam.etcd.idleRelease)")
}

// config returns the etcdstore configuration, or nil without
// --etcd-endpoints; any other --etcd-* flag without it is an error.
func (e *etcdFlags) config() (*etcdstore.Config, error) {
	if e.endpoints == "" {
		if e.ca != "" || e.cert != "" || e.key != "" || e.user != "" {
			return nil, fmt.Errorf("--etcd-ca, --etcd-cert, --etcd-key and --etcd-user need --etcd-endpoints")
		}
		return nil, nil
	}
	if e.syncInterval <= 0 {
		return nil, fmt.Errorf("--etcd-sync-interval %s: want a positive duration such as 1m", e.syncInterval)
	}
	var eps []string
	for ep := range strings.SplitSeq(e.endpoints, ",") {
		if ep = strings.TrimSpace(ep); ep != "" {
			eps = append(eps, ep)
		}
	}
	return &etcdstore.Config{
		Endpoints: eps, Prefix: e.prefix,
		CAFile: e.ca, CertFile: e.cert, KeyFile: e.key,
		Username: e.user, Password: os.Getenv("MEDIANET_ETCD_PASSWORD"),
		IdleRelease: e.idleRelease,
	}, nil
}

// syncEtcd calls d.SyncEtcd every interval until ctx ends; SyncEtcd logs
// what it finds (lost blocks loudly).
func syncEtcd(ctx context.Context, d *dockerplugin.Driver, interval time.Duration) {
	dockerplugin.Every(ctx, interval, func(now time.Time) { d.SyncEtcd(ctx, now) })
}
