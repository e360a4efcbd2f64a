package podmantest

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
)

// Container is a container the harness started.
type Container struct {
	h    *Harness
	Name string
	ID   string
}

// Start runs `podman run -d` of BusyboxImage (imported on first use) with
// `sleep 3600`, attached to network, plus extra run flags (e.g. "--ip",
// "10.0.0.5"). The container is removed when the test ends.
func (h *Harness) Start(name, network string, extra ...string) *Container {
	h.t.Helper()
	h.ImportBusybox()
	args := append([]string{"run", "-d", "--name", name, "--network", network}, extra...)
	args = append(args, BusyboxImage, "sleep", "3600")
	h.t.Cleanup(func() { _, _ = h.Run("rm", "-f", "-t", "0", name) })
	out := h.MustRun(args...)
	return &Container{h: h, Name: name, ID: strings.TrimSpace(out)}
}

// Remove runs `podman rm -f` (which runs CNI DEL).
func (c *Container) Remove() error {
	_, err := c.h.Run("rm", "-f", "-t", "0", c.Name)
	return err
}

// Exec runs a command in the container and returns its stdout.
func (c *Container) Exec(cmd ...string) (string, error) {
	return c.h.Run(append([]string{"exec", c.Name}, cmd...)...)
}

// Addrs returns the global addresses podman reports for the container
// on network (from podman inspect).
func (c *Container) Addrs(network string) ([]netip.Prefix, error) {
	out, err := c.h.Run("inspect", "--format", "{{json .NetworkSettings.Networks}}", c.Name)
	if err != nil {
		return nil, err
	}
	var nets map[string]struct {
		IPAddress           string
		IPPrefixLen         int
		GlobalIPv6Address   string
		GlobalIPv6PrefixLen int
		MacAddress          string
	}
	if err := json.Unmarshal([]byte(out), &nets); err != nil {
		return nil, fmt.Errorf("podmantest: inspect %s: %w: %s", c.Name, err, out)
	}
	n, ok := nets[network]
	if !ok {
		return nil, fmt.Errorf("podmantest: container %s is not on network %q: %s", c.Name, network, out)
	}
	var ps []netip.Prefix
	for _, a := range []struct {
		ip   string
		bits int
	}{{n.IPAddress, n.IPPrefixLen}, {n.GlobalIPv6Address, n.GlobalIPv6PrefixLen}} {
		if a.ip == "" {
			continue
		}
		ip, err := netip.ParseAddr(a.ip)
		if err != nil {
			return nil, fmt.Errorf("podmantest: inspect %s: address %q: %w", c.Name, a.ip, err)
		}
		ps = append(ps, netip.PrefixFrom(ip, a.bits))
	}
	return ps, nil
}
