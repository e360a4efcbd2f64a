package dockerdhcp

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/medianet/medianet/dhcp/dhcpapi"
	"github.com/medianet/medianet/internal/dhcptest"
	"github.com/medianet/medianet/internal/dockertest"
)

// released waits until the server's database shows addr's lease ended.
func (l *lab) released(t *testing.T, addr netip.Addr) {
	t.Helper()
	if err := l.srv.WaitLease(addr, 10*time.Second, func(sl dhcptest.Lease, ok bool) bool { return !ok || !sl.Active }); err != nil {
		t.Fatalf("no RELEASE of %s seen: %v", addr, err)
	}
}

// TestDockerDHCPHostname: Docker tells the driver no container name;
// medianetd's reconcile loop reads it from the engine and the lease is
// renewed with it as option 12 at once, so the server's lease table shows
// the container under its MAC and its name (made a hostname: lower case,
// "_" and "." as "-") within one reconcile period (30 s).
func TestDockerDHCPHostname(t *testing.T) {
	for _, kind := range dhcptest.Kinds {
		t.Run(kind, func(t *testing.T) {
			l := newLab(t, kind)
			id := l.run(t, "Janus_Media.0")
			addr, mac := l.eth0(t, id)
			const want = "janus-media-0"
			start := time.Now()
			err := dockertest.WaitFor(dockerReconcile+20*time.Second, func() error {
				sl, ok, err := l.srv.LeaseOf(addr.Addr())
				if err != nil || !ok || !sl.Active || !strings.EqualFold(sl.MAC, mac) || sl.Hostname != want {
					return fmt.Errorf("%w: server's lease of %s: %+v (present %v, %v); want MAC %s, hostname %s", dockertest.ErrNotYet, addr, sl, ok, err, mac, want)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: the server's table named %s after %s", kind, addr, time.Since(start).Round(100*time.Millisecond))
			if ml, ok := l.leaseOf(t, mac); !ok || ml.Host != want || ml.Address != addr.String() {
				t.Errorf("medianetd's lease for %s: %+v (present %v); want hostname %s", mac, ml, ok, want)
			}
			l.host.MustDocker(t, "rm", "-f", id)
			l.released(t, addr.Addr())
		})
	}
}

// dockerReconcile is medianetd's reconcile period
// (dockerplugin.DefaultReconcileInterval).
const dockerReconcile = 30 * time.Second

// TestDockerDHCPMACAddress: with --mac-address a container has the same
// client identifier after docker rm and docker run again, and gets its
// address back from kea (which forgot the released lease), another
// container started in between. When the server has lost its leases and
// its pool is now one address, taken: docker run fails naming the server
// that leases the network's other address, and leaves no lease and no
// link; once the address is free, the container gets it (its remembered
// one is not in the pool any more).
func TestDockerDHCPMACAddress(t *testing.T) {
	l := newLab(t, dhcptest.Kea)
	const mac = "02:42:0a:ef:00:77"
	run := func(name string) (string, error) {
		t.Cleanup(func() { _, _ = l.host.Docker("rm", "-f", name) })
		return l.runWithMAC(name, mac)
	}
	id, err := run("jvb-0")
	if err != nil {
		t.Fatal(err)
	}
	addr, got := l.eth0(t, id)
	if got != mac {
		t.Fatalf("container MAC %s, want --mac-address %s", got, mac)
	}
	l.host.MustDocker(t, "rm", "-f", id)
	l.released(t, addr.Addr())
	other := l.run(t, "other-0")
	if id, err = run("jvb-1"); err != nil {
		t.Fatal(err)
	}
	if again, _ := l.eth0(t, id); again != addr {
		t.Fatalf("same --mac-address after docker rm: %s, want %s back", again, addr)
	}
	otherAddr, _ := l.eth0(t, other)
	l.host.MustDocker(t, "rm", "-f", id, other)
	l.released(t, addr.Addr())
	l.released(t, otherAddr.Addr())

	// The server loses its leases; its pool is one address, taken.
	must(t, l.srv.Stop())
	must(t, l.srv.ClearLeases())
	only := netip.MustParseAddr("10.239.0.170")
	l.srv.Cfg.PoolFirst, l.srv.Cfg.PoolLast = only, only
	must(t, l.srv.Start())
	filler := l.run(t, "filler")
	if a, _ := l.eth0(t, filler); a.Addr() != only {
		t.Fatalf("filler got %s, want the pool's only address %s", a, only)
	}
	out, err := run("jvb-2")
	if err == nil {
		t.Fatalf("docker run with the pool full succeeded: %s", out)
	}
	for _, want := range []string{"no DHCPOFFER", l.cfg.Server.String(), "pool exhausted", "mode=dhcp"} {
		if !strings.Contains(out, want) {
			t.Errorf("docker run's error does not say %q: %s", want, out)
		}
	}
	if ml, ok := l.leaseOf(t, mac); ok {
		t.Errorf("a failed docker run left a lease: %+v", ml)
	}
	if ls := l.macvlans(t); len(ls) > 0 {
		t.Errorf("macvlans left in the host namespace: %v", ls)
	}

	l.host.MustDocker(t, "rm", "-f", filler)
	l.released(t, only)
	if id, err = run("jvb-3"); err != nil {
		t.Fatalf("docker run with room in the pool again: %v", err)
	}
	if a, _ := l.eth0(t, id); a.Addr() != only {
		t.Errorf("with room in the pool again: %s, want the new pool's %s", a, only)
	}
	if ml, ok := l.leaseOf(t, mac); !ok || ml.State != dhcpapi.StateBound {
		t.Errorf("medianetd's lease for %s: %+v (present %v)", mac, ml, ok)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// runWithMAC is docker run --mac-address MAC on the lab's network. The
// docker CLI here (28) sends the MAC per network, which needs API 1.44,
// and Debian's dockerd 20.10 serves 1.41: the container is created
// through the engine's API with the container-wide MacAddress, as the
// 20.10 CLI does, and started with docker start.
func (l *lab) runWithMAC(name, mac string) (string, error) {
	body, err := json.Marshal(map[string]any{"Image": dockertest.Image, "Cmd": []string{"sleep", "600"}, "MacAddress": mac,
		"HostConfig": map[string]any{"NetworkMode": l.net}})
	if err != nil {
		return "", err
	}
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", l.host.Socket)
	}}}
	resp, err := c.Post("http://docker/v1.41/containers/create?name="+url.QueryEscape(name), "application/json", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var created struct {
		ID      string `json:"Id"`
		Message string `json:"message"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&created); err != nil || resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("create %s: %s: %s (%v)", name, resp.Status, created.Message, err)
	}
	out, err := l.host.Docker("start", created.ID)
	if err != nil {
		return out, err
	}
	return created.ID, nil
}
