package cni

// Routes: the "routes" lists of a configuration (the top-level one of the
// main plugin and ipam.routes, host-local's key) and the default-route rule
// of a secondary network.
//
// The rule (docs/kubernetes.md): a gateway gives its family's default route
// only in a namespace that has no default route of that family yet. Beside
// another interface's default route (the cluster network's eth0 under
// Multus) an attachment adds a default route only when a routes entry for
// 0.0.0.0/0 or ::/0 asks for one, and even then it never replaces the
// other interface's route (see macvlan.Configure).

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/medianet/medianet/macvlan"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// parseRoutes checks a routes list; field ("routes" or "ipam.routes")
// names it in errors. A gw must be of dst's family; no gw is kept as the
// zero Addr.
func parseRoutes(field string, rs []RouteConf) ([]macvlan.Route, error) {
	var out []macvlan.Route
	for i, r := range rs {
		dst, err := netip.ParsePrefix(r.Dst)
		if err != nil {
			return nil, configErr("%s[%d].dst %q is not a prefix such as \"10.0.0.0/8\" or \"0.0.0.0/0\"", field, i, r.Dst)
		}
		rt := macvlan.Route{Dst: dst.Masked()}
		if r.GW != "" {
			if rt.Gw, err = netip.ParseAddr(r.GW); err != nil || rt.Gw.Is4() != dst.Addr().Is4() {
				return nil, configErr("%s[%d].gw %q is not an address of the family of dst %q", field, i, r.GW, r.Dst)
			}
		}
		out = append(out, rt)
	}
	return out, nil
}

// CheckIPAMRoutes checks ipam.routes of n, naming the entry at fault; the
// configuration parsers call it so that a bad entry is a configuration
// error (code 7), never a route silently left out of a result.
func CheckIPAMRoutes(n *NetConf) error {
	_, err := parseRoutes("ipam.routes", n.IPAM.Routes)
	return err
}

// ipamRoutes returns ipam.routes as result routes, as host-local returns
// them: dst, and gw only when given (a runtime or main plugin then uses
// the family's gateway). Entries that do not parse are left out; the
// configuration parsers reject them first (CheckIPAMRoutes).
func ipamRoutes(n *NetConf) []*types.Route {
	var out []*types.Route
	for _, r := range n.IPAM.Routes {
		if rs, err := parseRoutes("ipam.routes", []RouteConf{r}); err == nil {
			out = append(out, route(rs[0].Dst, rs[0].Gw))
		}
	}
	return out
}

// families is a set of address families.
type families struct{ v4, v6 bool }

// has reports whether a's family is in f.
func (f families) has(a netip.Addr) bool {
	if a.Is4() {
		return f.v4
	}
	return f.v6
}

// set puts a's family in f.
func (f *families) set(a netip.Addr) {
	if a.Is4() {
		f.v4 = true
	} else {
		f.v6 = true
	}
}

// without returns the families of all not in f.
func (f families) without() families { return families{v4: !f.v4, v6: !f.v6} }

// defaultRoutes returns the families for which the namespace at path has
// a default route in its main table, through any link (a multipath route
// included). The runtime may pass no namespace (never on ADD): none then.
func defaultRoutes(path string) (families, error) {
	var f families
	if path == "" {
		return f, nil
	}
	fd, err := netns.GetFromPath(path)
	if err != nil {
		return f, fmt.Errorf("netns %q: %w", path, err)
	}
	defer fd.Close()
	h, err := netlink.NewHandleAt(fd, unix.NETLINK_ROUTE)
	if err != nil {
		return f, fmt.Errorf("netlink handle in netns %q: %w", path, err)
	}
	defer h.Close()
	for _, fam := range []struct {
		nl  int
		has *bool
	}{{netlink.FAMILY_V4, &f.v4}, {netlink.FAMILY_V6, &f.v6}} {
		routes, err := routeList(h, fam.nl)
		if err != nil {
			return f, fmt.Errorf("list routes in netns %q: %w", path, err)
		}
		for _, r := range routes {
			if r.Dst == nil || isDefault(r.Dst) {
				*fam.has = true
			}
		}
	}
	return f, nil
}

// routeList lists the main table's routes of family, retrying a dump the
// kernel marks interrupted; a last interrupted dump is used as it is.
func routeList(h *netlink.Handle, family int) ([]netlink.Route, error) {
	var routes []netlink.Route
	var err error
	for range 5 {
		if routes, err = h.RouteList(nil, family); !errors.Is(err, netlink.ErrDumpInterrupted) {
			return routes, err
		}
	}
	return routes, nil
}
