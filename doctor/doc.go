// Package doctor is medianet's preflight: it proves, before the first
// container, that a parent interface carries frames from MAC addresses the
// LAN has never seen, which every macvlan link needs and which VMware
// vSwitches without promiscuous mode and forged transmits, cloud VPCs with
// source/destination checks, Wi-Fi and MAC-locked switch ports silently
// refuse. `medianetctl doctor` and the node agent call Run.
//
// # How
//
// Run looks at the parent (missing, down, no carrier), then creates a
// macvlan with a fresh locally administered MAC in a fresh anonymous
// network namespace and asks each target (the gateway, or the parent's
// default gateway when none is given, and a peer node) whether it is
// there: an RFC 5227 ARP probe for IPv4 (sender IP 0.0.0.0) and the
// neighbour solicitation of duplicate address detection for IPv6 (source
// ::). Both are answered by whoever owns the address and teach nobody a
// cache entry, so the test needs no spare address and leaves no stale
// ARP entry pointing at a MAC that is about to vanish. The same probe is
// sent at the same time from the parent's own MAC, as the control:
//
//   - the test MAC gets an answer: frames pass (then an ARP probe padded to
//     the link's MTU checks that full-size frames reach the target too);
//   - only the parent's MAC gets one: frames from new MACs are dropped;
//   - neither: the target is absent, or ignores probes (no answer).
//
// # Cleanup
//
// The namespace is anonymous: only a descriptor held by Run keeps it
// alive, and the macvlan is created directly inside it (never in the
// parent's namespace). When Run returns, or the process is killed at any
// point, the descriptor closes, the kernel destroys the namespace and the
// link goes with it: nothing is left to sweep, no name can clash, and
// concurrent runs on one parent never see each other. The link is named
// LinkPrefix plus random hex so that it is recognisable while it exists.
//
// # Threads
//
// Netlink work goes through handles bound to a namespace. Creating the
// namespace and opening the packet sockets inside it run on a locked OS
// thread that returns to its namespace afterwards (or dies with its
// goroutine when it cannot); the sockets are then used from any thread.
package doctor
