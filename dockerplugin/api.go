package dockerplugin

// Wire types of Docker's remote driver protocol (moby
// libnetwork/docs/remote.md and ipam.md). They mirror
// github.com/docker/go-plugins-helpers' network and ipam types field for
// field, plus the fields that package lacks (RequiresRequestReplay), so
// that one socket can answer for both drivers; see the package doc.

// Plugin interface names answered by /Plugin.Activate.
const (
	networkDriverIface = "NetworkDriver"
	ipamDriverIface    = "IpamDriver"
)

// Scope values of GetCapabilities.
const (
	ScopeLocal  = "local"
	ScopeGlobal = "global"
)

// Option keys Docker uses.
const (
	genericOptions     = "com.docker.network.generic"
	requestAddressType = "RequestAddressType"
	gatewayRequest     = "com.docker.network.gateway"
	macAddressOption   = "com.docker.network.endpoint.macaddress"
)

type activateResponse struct {
	Implements []string
}

type errorResponse struct {
	Err string
}

// NetworkDriver messages.

type capabilitiesResponse struct {
	Scope             string
	ConnectivityScope string
}

// ipamData is one address family's pool as the network driver receives
// it: Pool and Gateway in CIDR notation, AuxAddresses name to CIDR.
type ipamData struct {
	AddressSpace string
	Pool         string
	Gateway      string
	AuxAddresses map[string]any
}

type allocateNetworkRequest struct {
	NetworkID          string
	Options            map[string]string
	IPv4Data, IPv6Data []ipamData
}

type allocateNetworkResponse struct {
	Options map[string]string
}

type networkIDRequest struct {
	NetworkID string
}

type createNetworkRequest struct {
	NetworkID string
	Options   map[string]any
	IPv4Data  []ipamData
	IPv6Data  []ipamData
}

type endpointInterface struct {
	Address     string
	AddressIPv6 string
	MacAddress  string
}

type createEndpointRequest struct {
	NetworkID  string
	EndpointID string
	Interface  *endpointInterface
	Options    map[string]any
}

type createEndpointResponse struct {
	Interface *endpointInterface `json:",omitempty"`
}

type endpointRequest struct {
	NetworkID  string
	EndpointID string
}

type endpointInfoResponse struct {
	Value map[string]string
}

type joinRequest struct {
	NetworkID  string
	EndpointID string
	SandboxKey string
	Options    map[string]any
}

type interfaceName struct {
	SrcName   string
	DstPrefix string
}

type staticRoute struct {
	Destination string
	RouteType   int
	NextHop     string
}

type joinResponse struct {
	InterfaceName         interfaceName
	Gateway               string `json:",omitempty"`
	GatewayIPv6           string `json:",omitempty"`
	StaticRoutes          []staticRoute
	DisableGatewayService bool
}

// IpamDriver messages.

type ipamCapabilitiesResponse struct {
	RequiresMACAddress    bool
	RequiresRequestReplay bool
}

type addressSpacesResponse struct {
	LocalDefaultAddressSpace  string
	GlobalDefaultAddressSpace string
}

type requestPoolRequest struct {
	AddressSpace string
	Pool         string
	SubPool      string
	Options      map[string]string
	V6           bool
}

type requestPoolResponse struct {
	PoolID string
	Pool   string
	Data   map[string]string
}

type releasePoolRequest struct {
	PoolID string
}

type requestAddressRequest struct {
	PoolID  string
	Address string
	Options map[string]string
}

type requestAddressResponse struct {
	Address string
	Data    map[string]string
}

type releaseAddressRequest struct {
	PoolID  string
	Address string
}

type empty struct{}
