package natprobe_test

import (
	"testing"

	"github.com/medianet/medianet/internal/dockertest"
	"github.com/medianet/medianet/internal/natlab"
	"github.com/medianet/medianet/natprobe"
)

// TestDockerBridgeContainer is the seed's story: a container on Docker's
// default bridge, probed with --container against a natprobe server the
// host routes to through a veth of the test's own, says NAT, needs-turn,
// and flags the remap that breaks ICE when the container sends the offer.
// TestMedianetContainer (medianet_test.go) is the other half: the same
// probe from a container on a medianet network says no NAT and ok.
func TestDockerBridgeContainer(t *testing.T) {
	dockertest.Require(t)
	h := natlab.NewHostServer(t)
	srv := h.IP1.String() + ":3478"
	startInNS(t, h.NS, []string{srv, h.IP2.String() + ":3479"},
		natprobeBin(), "serve", "--primary", srv, "--alternate", h.IP2.String()+":3479")
	id := dockertest.Run(t, []string{"--network", "bridge"})
	rep, code := runProbe(t, "probe", "--container", id, "--runtime", "docker", "--server", srv, "--json")
	want := want{natPresent: true, mapping: natprobe.EndpointIndependent, filtering: natprobe.AddressAndPortDependent,
		classic: natprobe.ClassicPortRestrictedCone, remaps: "true", verdict: natprobe.VerdictNeedsTURN, exit: 3}
	want.check(t, rep, code)
	if rep.Mapped == "" || rep.Local == rep.Mapped {
		t.Errorf("got local %s mapped %s, want the host's address as mapped", rep.Local, rep.Mapped)
	}
}
