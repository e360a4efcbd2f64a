package metrics

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/medianet/medianet/ipam"
	"github.com/medianet/medianet/ipam/etcdstore"
)

// Network is what the collector knows of a network beyond the store: its
// configuration as this node sees it, which gives the node's range, and,
// when its blocks are claimed in etcd, how to read the claims.
type Network struct {
	Config ipam.Config
	Etcd   *etcdstore.Config // nil: static node ranges or the whole subnet
}

// NetworkSource lists networks whose allocations live in the agent's
// store (package agent reads the CNI plugins' networks; medianetd lists
// its Docker pools). It may return networks and an error (files it
// skipped) together.
type NetworkSource interface {
	Networks(ctx context.Context) ([]Network, error)
}

// Static is a NetworkSource of fixed networks (tests, and medianetd's
// Docker pools, listed by the daemon itself).
type Static func(ctx context.Context) ([]Network, error)

// Networks implements NetworkSource.
func (s Static) Networks(ctx context.Context) ([]Network, error) { return s(ctx) }

// networksByName merges the sources' networks (the first source naming a
// network wins) and their errors.
func networksByName(ctx context.Context, srcs []NetworkSource) (map[string]*Network, error) {
	out := map[string]*Network{}
	var errs []error
	for _, s := range srcs {
		nets, err := s.Networks(ctx)
		if err != nil {
			errs = append(errs, err)
		}
		for i := range nets {
			if _, ok := out[nets[i].Config.Network]; !ok {
				out[nets[i].Config.Network] = &nets[i]
			}
		}
	}
	return out, errors.Join(errs...)
}

// sortedNames returns the keys of m in order.
func sortedNames[V any](m map[string]V) []string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

// errorText flattens err for a log line ("" for nil).
func errorText(err error) string {
	if err == nil {
		return ""
	}
	return strings.ReplaceAll(err.Error(), "\n", "; ")
}

// knownNetworks is the set of networks whose names a report may carry as
// a label value: those the sources name and those with state in the
// store. A name not in it is looked up again at most once a second.
type knownNetworks struct {
	list func() map[string]bool

	mu    sync.Mutex
	names map[string]bool
	at    time.Time
}

// has reports whether name is a known network ("" always is).
func (k *knownNetworks) has(name string) bool {
	if name == "" {
		return true
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.names[name] || time.Since(k.at) < time.Second {
		return k.names[name]
	}
	k.names, k.at = k.list(), time.Now()
	return k.names[name]
}
