// Package dhcp is the node agent's DHCP client (medianetd): it obtains a
// lease for a container's macvlan link from the LAN's DHCP server, keeps
// it (renewal at T1, rebinding at T2, the address taken off the link at
// expiry), persists every lease in <dataDir>/dhcp.db (bbolt) so that an
// agent restart, a node reboot with the containers kept, or a server
// restart loses nothing, and gives it back (RELEASE, unicast as RFC 2131
// says) when the attachment goes.
//
// Every exchange runs from inside the container's network namespace on
// its own link: DISCOVER and REQUEST on a packet socket bound to the link
// (the server sees the container's MAC, and the client identifier names
// the workload), renewal and RELEASE on a UDP socket bound to the leased
// address. Sockets are created inside the namespace on a locked thread
// (containernetworking's ns.WithNetNSPath) and keep to it afterwards.
//
// The CNI plugins reach the agent through package dhcpapi (a unix socket
// in the data directory, standard library only). The agent alone writes
// dhcp.db; medianetctl reads it. No lock is held across a DHCP exchange.
package dhcp
