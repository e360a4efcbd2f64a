package dockertest

import (
	"fmt"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/medianet/medianet/internal/nstest"
)

// RunningContainers returns the init PIDs of the containers running on h
// as its containerd sees them, so also while h's dockerd is stopped or
// killed (with its containers still up).
func (h *Host) RunningContainers() ([]int, error) {
	out, err := exec.Command("ctr", "--address", filepath.Join(h.Dir, "containerd.sock"), "--namespace", "moby", "tasks", "ls").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("dockertest: %s: ctr tasks ls: %w: %s", h.Name, err, out)
	}
	var pids []int
	for _, line := range strings.Split(string(out), "\n")[1:] { // TASK PID STATUS
		f := strings.Fields(line)
		var pid int
		if len(f) == 3 && f[2] == "RUNNING" {
			if _, err := fmt.Sscan(f[1], &pid); err == nil && pid > 0 {
				pids = append(pids, pid)
			}
		}
	}
	return pids, nil
}

// ContainerAddrs returns the IPv4 addresses on ifname of every container
// running on h, read in the containers' namespaces (the kernel's view,
// whatever Docker believes).
func (h *Host) ContainerAddrs(ifname string) ([]netip.Prefix, error) {
	pids, err := h.RunningContainers()
	if err != nil {
		return nil, err
	}
	var out []netip.Prefix
	for _, pid := range pids {
		as, err := AddrsOf(pid, ifname)
		if err != nil {
			return nil, fmt.Errorf("dockertest: %s: container pid %d: %w", h.Name, pid, err)
		}
		out = append(out, as...)
	}
	return out, nil
}

// AddrsOf returns the IPv4 addresses of ifname in the network namespace
// of process pid; none when it has no such link.
func AddrsOf(pid int, ifname string) ([]netip.Prefix, error) {
	nl, err := procNS(pid).NewHandle()
	if err != nil {
		return nil, err
	}
	defer nl.Close()
	link, err := nl.LinkByName(ifname)
	if _, missing := err.(netlink.LinkNotFoundError); missing {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	addrs, err := nl.AddrList(link, netlink.FAMILY_V4)
	if err != nil {
		return nil, err
	}
	var out []netip.Prefix
	for _, a := range addrs {
		ip, _ := netip.AddrFromSlice(a.IP.To4())
		ones, _ := a.Mask.Size()
		out = append(out, netip.PrefixFrom(ip, ones))
	}
	return out, nil
}

// CheckMacvlan returns nil when eth0 of the container whose init is pid
// is a macvlan on h's Parent: its link namespace is h's, and its parent
// there is Parent.
func (h *Host) CheckMacvlan(pid int) error {
	cnl, err := procNS(pid).NewHandle()
	if err != nil {
		return err
	}
	defer cnl.Close()
	eth0, err := cnl.LinkByName("eth0")
	if err != nil {
		return fmt.Errorf("container pid %d: %w", pid, err)
	}
	if eth0.Type() != "macvlan" {
		return fmt.Errorf("container pid %d: eth0 is a %s link, want macvlan", pid, eth0.Type())
	}
	hns, err := netns.GetFromPath(h.NS.Path)
	if err != nil {
		return err
	}
	defer hns.Close()
	id, err := cnl.GetNetNsIdByFd(int(hns))
	if err != nil {
		return err
	}
	if eth0.Attrs().NetNsID != id {
		return fmt.Errorf("container pid %d: eth0's parent is in namespace id %d, not %s's (id %d there)", pid, eth0.Attrs().NetNsID, h.Name, id)
	}
	hnl, err := h.NS.NewHandle()
	if err != nil {
		return err
	}
	defer hnl.Close()
	parent, err := hnl.LinkByName(Parent)
	if err != nil {
		return err
	}
	if eth0.Attrs().ParentIndex != parent.Attrs().Index {
		return fmt.Errorf("container pid %d: eth0's parent is link %d of %s, want %s (%d)", pid, eth0.Attrs().ParentIndex, h.Name, Parent, parent.Attrs().Index)
	}
	return nil
}

// Macvlans lists the macvlan links on Parent left in h's namespace.
func (h *Host) Macvlans() ([]string, error) {
	nl, err := h.NS.NewHandle()
	if err != nil {
		return nil, err
	}
	defer nl.Close()
	parent, err := nl.LinkByName(Parent)
	if err != nil {
		return nil, err
	}
	links, err := nl.LinkList()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, l := range links {
		if l.Type() == "macvlan" && l.Attrs().ParentIndex == parent.Attrs().Index {
			out = append(out, l.Attrs().Name)
		}
	}
	return out, nil
}

// procNS is the network namespace of process pid.
func procNS(pid int) *nstest.NS {
	return &nstest.NS{Name: fmt.Sprintf("pid %d", pid), Path: fmt.Sprintf("/proc/%d/ns/net", pid)}
}
