// Package macvlan creates, configures, checks and deletes macvlan links
// with netlink, for the CNI plugin (cmd/medianet) and the Docker driver
// (dockerplugin). It knows nothing of CNI or Docker types: callers
// translate their configuration into Spec and Config.
//
// # Namespaces
//
// Every function names namespaces by path (e.g. "/run/netns/x",
// "/proc/PID/ns/net", a CNI_NETNS value). An empty hostNS means the
// namespace the calling process runs in, which is where a CNI plugin or
// medianetd finds the master. The master is always looked up in hostNS;
// containers' links live in targetNS.
//
// # Threads
//
// Link, address and route work goes through netlink handles opened on the
// namespace (netlink.NewHandleAt); the calling goroutine's thread never
// changes namespace for those, so the long-lived Docker daemon can call
// this package from any goroutine concurrently. Two things cannot be done
// through a handle and run on a locked OS thread briefly switched into the
// target namespace (containernetworking's ns.Do, which restores or discards
// the thread): writing per-link sysctls (arp_notify, ndisc_notify,
// accept_dad) and opening the AF_PACKET socket used for announcements
// (after which the socket is used from any thread). Link dumps that may be
// interrupted (NLM_F_DUMP_INTR) are retried, as containernetworking's
// netlinksafe does.
//
// # Atomicity
//
// Create and CreateInHost either succeed or leave no link behind; a
// process killed inside Create leaves at most a link named TempPrefix...
// in the target namespace, which DeleteTemp removes. Delete, DeleteTemp,
// DeleteVLAN, DeleteShim and DelShimRoute are idempotent: a namespace or
// link already gone is success.
//
// The VLAN parent and the host shim are shared by every container on a
// master, and parallel ADDs in other processes may use them the moment
// they exist. EnsureVLAN and EnsureShim therefore adopt a link another
// process created between their lookup and their create (EEXIST), after
// checking it is the right kind on the right master, and never delete a
// link, not even one they made: a failing caller must not take it from
// under a concurrent one. Only DeleteVLAN and DeleteShim delete them.
//
// # Announcements
//
// Configure sets arp_notify (and ndisc_notify for IPv6) and adds the
// addresses while the link is still down; bringing it up then makes the
// kernel send a gratuitous ARP request per IPv4 address and, for IPv6
// addresses added with SkipDAD, an unsolicited neighbour advertisement
// with the override flag. Announce sends the same frames itself (raw
// AF_PACKET) for a link that is already up. Peers holding an entry for the
// address (say, of the previous container with that IP) replace the MAC at
// once, and switches learn it from the same frames. Linux peers create new
// entries from them only with arp_accept=1, or for IPv6 on routers
// (forwarding=1) with accept_untracked_na=1 (RFC 9131). IPv6 addresses
// added without SkipDAD are tentative until DAD ends; the kernel announces
// them afterwards (ndisc_notify).
//
// # Callers
//
// CNI ADD (cmd/medianet): with a vlan, master, _, err = EnsureVLAN("",
// master, vlan); then Create("", spec, CNI_NETNS, CNI_IFNAME); run IPAM;
// Configure(CNI_NETNS, CNI_IFNAME, cfg); with hostShim, EnsureShim and
// AddShimRoute per container address. On any later failure call
// Delete(CNI_NETNS, CNI_IFNAME). DEL: DelShimRoute per address, then
// Delete (both succeed when things are gone). CHECK: Check.
//
// Docker Join (dockerplugin): CreateInHost("", spec, tmpName) and hand
// tmpName to Docker as SrcName; Docker moves, renames and configures it.
// Leave/DeleteEndpoint: Delete("", tmpName), a no-op once Docker moved it.
// DeleteNetwork: DeleteVLAN when this driver created the VLAN and no
// network uses it any more.
package macvlan

import "errors"

// Sentinel errors, matched with errors.Is; returned errors wrap them with
// the object's name.
var (
	// ErrMasterNotFound: the master (parent) link does not exist in the
	// host namespace.
	ErrMasterNotFound = errors.New("master link not found")
	// ErrNetNSNotFound: the namespace path does not exist or is not a
	// network namespace.
	ErrNetNSNotFound = errors.New("network namespace not found")
	// ErrLinkExists: the requested link name is taken in its namespace.
	ErrLinkExists = errors.New("link name already in use")
	// ErrLinkNotFound: the link does not exist (Check, shim routes).
	ErrLinkNotFound = errors.New("link not found")
	// ErrInvalidSpec: a Spec or Config field is out of range; the message
	// names the field.
	ErrInvalidSpec = errors.New("invalid specification")
	// ErrMismatch: Check found the link, but its kind, mode, master, MTU or
	// MAC differs from what was asked.
	ErrMismatch = errors.New("link differs from specification")
	// ErrAddressMissing: Check did not find an expected address.
	ErrAddressMissing = errors.New("address missing")
	// ErrRouteMissing: Check did not find an expected route.
	ErrRouteMissing = errors.New("route missing")
	// ErrNotVLAN: a link named like a VLAN parent exists but is not the
	// expected 802.1q link, so it is left alone.
	ErrNotVLAN = errors.New("not the expected vlan link")
	// ErrInUse: DeleteVLAN or DeleteShim found links still using the link.
	ErrInUse = errors.New("link still in use")
)
