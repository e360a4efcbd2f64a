// Package swarm holds medianet's multi-host end-to-end tests: three Docker
// hosts on one machine (internal/dockertest.Hosts, each in its own network
// namespace with its own containerd and dockerd, joined by a LAN whose
// parent is lan0 on every host). On them: a Swarm of three managers with
// manager failover (clean stop and SIGKILL of the leader, both ways,
// repeated) and the stale pools and links it leaves, checked on every
// host after every step, two of the plugins reading their engine through
// medianet-engine-proxy; the lifecycle of tasks and nodes, standalone hosts
// sharing node ranges or an etcd, docker-compose with the legacy and the
// managed plugin, and a benchmark of `docker service scale` against
// Docker's own macvlan driver.
//
// The tests build their hosts, use no pre-existing interface and no
// registry, and leave nothing behind. They run one at a time (go test -p
// 1, no t.Parallel): each takes much of the machine.
package swarm

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/medianet/medianet/internal/cnitest"
	"github.com/medianet/medianet/internal/dockertest"
)

// binDir holds medianetd and medianet-engine-proxy: $MEDIANET_BIN, or
// built by TestMain.
var binDir string

func TestMain(m *testing.M) {
	os.Exit(cnitest.Main(m, &binDir, "medianetd", "medianet-engine-proxy"))
}

func medianetdBin() string { return filepath.Join(binDir, "medianetd") }

// waitFor polls cond for up to d; conditions return errNotYet while
// waiting.
var (
	waitFor   = dockertest.WaitFor
	errNotYet = dockertest.ErrNotYet
)
