// Package docker holds medianetd's end-to-end tests against the machine's
// dockerd: the legacy socket plugin on standalone Docker, the managed
// plugin, restarts of medianetd and of dockerd, bad input, and a
// benchmark against Docker's built-in macvlan driver. Swarm and several
// hosts are test/swarm's, on dockerd hosts of its own. Every macvlan parent
// is a veth the test creates in the root namespace whose peer sits in a
// namespace the test creates (internal/nstest); no test touches eth0.
//
// The tests share dockerd and the plugin name medianet, so they run one at
// a time (go test -p 1, no t.Parallel).
package docker

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/medianet/medianet/internal/cnitest"

	"github.com/vishvananda/netlink"
	bolt "go.etcd.io/bbolt"

	"github.com/medianet/medianet/internal/dockertest"
	"github.com/medianet/medianet/internal/nstest"
	"github.com/medianet/medianet/ipam"
	"github.com/medianet/medianet/ipam/boltstore"
)

// binDir holds medianetd, medianet-engine-proxy and the CNI binaries the
// installer image packs:
// $MEDIANET_BIN, or built by TestMain.
var binDir string

func TestMain(m *testing.M) {
	os.Exit(cnitest.Main(m, &binDir, "medianetd", "medianet", "medianet-ipam", "medianetctl", "medianet-engine-proxy"))
}

// require skips when root, dockerd or busybox is missing, and fails when a
// managed plugin named medianet would shadow the legacy socket.
func require(t testing.TB) {
	t.Helper()
	nstest.SkipUnlessRoot(t)
	dockertest.Require(t)
	if _, err := dockertest.Docker("plugin", "inspect", "medianet"); err == nil {
		t.Fatal("a managed plugin named medianet is installed; remove it (docker plugin rm -f medianet) to run the legacy-plugin tests")
	}
}

// medianetd is the legacy-plugin medianetd of a test, with helpers that
// read its stores.
type medianetd struct{ *dockertest.Medianetd }

func startMedianetd(t testing.TB, args ...string) medianetd {
	t.Helper()
	return medianetd{dockertest.StartMedianetd(t, filepath.Join(binDir, "medianetd"), args...)}
}

// allocations lists the Docker addresses held in medianetd's IPAM store.
func (d medianetd) allocations(t testing.TB) []ipam.Allocation {
	t.Helper()
	ctx := context.Background()
	st, err := boltstore.Open(ctx, d.DataDir, boltstore.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Check(ctx); err != nil {
		t.Errorf("ipam store: %v", err)
	}
	all, err := ipam.List(ctx, st, "")
	if err != nil {
		t.Fatal(err)
	}
	return all
}

// stateCounts stops medianetd and counts the records of its docker.db.
func (d medianetd) stateCounts(t testing.TB) map[string]int {
	t.Helper()
	d.Stop()
	db, err := bolt.Open(filepath.Join(d.DataDir, "docker.db"), 0o600, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	out := map[string]int{}
	err = db.View(func(tx *bolt.Tx) error {
		for _, b := range []string{"networks", "endpoints", "pools"} {
			if bk := tx.Bucket([]byte(b)); bk != nil {
				out[b] = bk.Stats().KeyN
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// docker runs the docker CLI, failing t on error.
func docker(t testing.TB, args ...string) string {
	t.Helper()
	out, err := dockertest.Docker(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// network creates a Docker network removed when t ends.
func network(t testing.TB, name string, args ...string) {
	t.Helper()
	docker(t, append(append([]string{"network", "create"}, args...), name)...)
	t.Cleanup(func() { dockertest.Docker("network", "rm", name) })
}

func uniqueName(prefix string) string { return nstest.UniqueName(prefix) }

// addr4 returns the IPv4 address of eth0 inside a container, read from
// the kernel rather than from Docker's records.
func addr4(t testing.TB, id string) netip.Prefix {
	t.Helper()
	out := docker(t, "exec", id, "ip", "-4", "-o", "addr", "show", "eth0")
	for f := range strings.FieldsSeq(out) {
		if p, err := netip.ParsePrefix(f); err == nil {
			return p
		}
	}
	t.Fatalf("no IPv4 address on eth0 of %s: %q", id, out)
	return netip.Prefix{}
}

// ping checks that container id reaches dst.
func ping(t testing.TB, id string, dst netip.Addr) {
	t.Helper()
	var err error
	for range 3 {
		if _, err = dockertest.Docker("exec", id, "ping", "-c", "1", "-W", "2", dst.String()); err == nil {
			return
		}
	}
	t.Errorf("%.12s cannot reach %s: %v", id, dst, err)
}

// macvlansOn lists the macvlan links on master left in the root namespace.
func macvlansOn(t testing.TB, master string) []string {
	t.Helper()
	m, err := netlink.LinkByName(master)
	if err != nil {
		t.Fatal(err)
	}
	links, err := netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range links {
		if l.Type() == "macvlan" && l.Attrs().ParentIndex == m.Attrs().Index {
			out = append(out, l.Attrs().Name)
		}
	}
	return out
}

// waitFor polls cond for up to d; conditions return errNotYet while
// waiting.
var (
	waitFor   = dockertest.WaitFor
	errNotYet = dockertest.ErrNotYet
)
