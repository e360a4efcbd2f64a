// Package dhcpapi is the wire between the CNI plugins (and medianetctl)
// and the node agent's DHCP service (package dhcp, served by medianetd):
// JSON over HTTP on the unix socket <dataDir>/dhcp.sock. The plugin asks,
// the agent holds and renews every lease; the plugin keeps nothing.
//
// It imports only the standard library, so the plugin binaries do not
// link the DHCP client.
package dhcpapi

import (
	"errors"
	"path/filepath"
	"time"
)

// SocketName is the agent's DHCP socket inside the data directory.
const SocketName = "dhcp.sock"

// SocketPath returns the DHCP socket of dataDir.
func SocketPath(dataDir string) string { return filepath.Join(dataDir, SocketName) }

// Paths of the service (all POST with a JSON body, answers JSON).
const (
	PathAcquire = "/v1/acquire"
	PathRelease = "/v1/release"
	PathGet     = "/v1/get"
	PathGC      = "/v1/gc"
	PathList    = "/v1/list"
)

// Sentinel errors: the agent's answer carries the kind, the client maps
// it back (errors.Is), cni/errors.go picks the CNI code.
var (
	// ErrNoAgent: nobody serves the socket (medianetd is not running on
	// this node with this data directory).
	ErrNoAgent = errors.New("dhcp: no node agent")
	// ErrNoAnswer: no server answered within the bound.
	ErrNoAnswer = errors.New("dhcp: no server answered")
	// ErrNAK: a server refused (DHCPNAK).
	ErrNAK = errors.New("dhcp: server refused")
	// ErrNotFound: the agent holds no lease for the attachment.
	ErrNotFound = errors.New("dhcp: no lease")
	// ErrExpired: the lease ran out without renewal; its address was
	// removed from the container.
	ErrExpired = errors.New("dhcp: lease expired")
	// ErrBadRequest: the request cannot work (missing namespace or link).
	ErrBadRequest = errors.New("dhcp: bad request")
)

// kinds name the sentinels on the wire.
var kinds = map[string]error{
	"no-answer": ErrNoAnswer, "nak": ErrNAK, "not-found": ErrNotFound,
	"expired": ErrExpired, "bad-request": ErrBadRequest,
}

// Kind returns the wire name of err's sentinel ("" for none).
func Kind(err error) string {
	for k, e := range kinds {
		if errors.Is(err, e) {
			return k
		}
	}
	return ""
}

// Key names one attachment's lease.
type Key struct {
	Network     string `json:"network"`
	ContainerID string `json:"containerID"`
	IfName      string `json:"ifname"`
}

// AcquireRequest asks for a lease on the link IfName inside the network
// namespace Netns (the link exists; the agent brings it up and talks
// DHCP on it with the link's own MAC).
type AcquireRequest struct {
	Key
	Netns string `json:"netns"`
	// ClientID is option 61's value after the type byte (type 0); it
	// names the workload, so the server hands the same workload the same
	// address.
	ClientID string `json:"clientID"`
	// Hostname is option 12.
	Hostname string `json:"hostname,omitempty"`
	// Timeout bounds the exchange (DISCOVER to ACK).
	Timeout time.Duration `json:"timeout"`
	// Sticky: on release the lease is not given back (no RELEASE), so the
	// workload finds it again on any node while the server keeps it.
	Sticky bool `json:"sticky,omitempty"`
	// Parent, when set, asks for a lease before the workload's link
	// exists (Docker's RequestAddress): the exchange runs on a
	// short-lived macvlan with MAC on Parent (a link of the agent's own
	// namespace, macvlan mode Mode), inside an anonymous namespace, and
	// Netns is ignored. The lease then waits for Attach to name the
	// namespace where the workload's link with MAC lives (found by its
	// MAC: Docker renames it). A RELEASE whose link is gone is sent from
	// such a macvlan too.
	Parent string `json:"parent,omitempty"`
	MAC    string `json:"mac,omitempty"`
	Mode   string `json:"macvlanMode,omitempty"`
}

// Route is one route from the lease (option 121, or 3 as a default route).
type Route struct {
	Dst string `json:"dst"`
	GW  string `json:"gw,omitempty"`
}

// Lease is what the agent holds for an attachment.
type Lease struct {
	Key
	Netns string `json:"netns"`
	// Address is the leased address with the subnet's prefix length.
	Address string `json:"address"`
	// Gateway is option 3's first router ("" without).
	Gateway string `json:"gateway,omitempty"`
	// Routes are option 121's (classless static routes).
	Routes []Route  `json:"routes,omitempty"`
	DNS    []string `json:"dns,omitempty"`
	Domain string   `json:"domain,omitempty"`
	Server string   `json:"server"`
	MAC    string   `json:"mac"`
	Client string   `json:"clientID"`
	Host   string   `json:"hostname,omitempty"`
	// Obtained is when the lease was first bound, Bound when the last
	// ACK (a renewal) came.
	Obtained time.Time `json:"obtained"`
	Bound    time.Time `json:"bound"`
	// Expires is when the lease ends unless renewed (RFC 3339 on the wire).
	Expires time.Time `json:"leaseExpires"`
	// State is "bound" or "expired".
	State string `json:"state"`
}

// Lease states.
const (
	StateBound   = "bound"
	StateExpired = "expired"
)

// GCRequest releases the network's leases of attachments not in Valid.
type GCRequest struct {
	Network string `json:"network"`
	Valid   []Key  `json:"valid"`
}

// ListRequest lists leases ("" network: all).
type ListRequest struct {
	Network string `json:"network,omitempty"`
}

// ErrorBody is the answer of a failed call.
type ErrorBody struct {
	Error string `json:"error"`
	Kind  string `json:"kind,omitempty"`
}
