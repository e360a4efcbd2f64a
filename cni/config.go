package cni

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/medianet/medianet/ipam"
)

// DefaultDataDir is where the store lives when ipam.dataDir is unset.
const DefaultDataDir = "/var/lib/medianet"

// NetConf is a medianet network configuration as JSON (docs/design.md). Unknown
// keys are ignored, as CNI configurations carry other plugins' keys.
type NetConf struct {
	CNIVersion string `json:"cniVersion,omitempty"`
	Name       string `json:"name,omitempty"`
	Type       string `json:"type,omitempty"`
	// RawPrevResult is the previous result (CHECK, chained ADD).
	RawPrevResult map[string]any `json:"prevResult,omitempty"`
	// ValidAttachments is GC's cni.dev/valid-attachments.
	ValidAttachments []types.GCAttachment `json:"cni.dev/valid-attachments,omitempty"`
	Master           string               `json:"master,omitempty"`
	Mode             string               `json:"mode,omitempty"`
	MTU              int                  `json:"mtu,omitempty"`
	VLAN             int                  `json:"vlan,omitempty"`
	IPAM             IPAMConf             `json:"ipam"`
	RuntimeConfig    RuntimeConfig        `json:"runtimeConfig,omitempty"`

	// Main plugin (cmd/medianet) keys; medianet-ipam ignores them.

	// MAC fixes the container link's MAC (runtimeConfig.mac wins).
	MAC string `json:"mac,omitempty"`
	// Routes are further routes through the container link.
	Routes []RouteConf `json:"routes,omitempty"`
	// SkipDAD makes IPv6 addresses usable at once (no duplicate address
	// detection, which otherwise delays readiness by a second or more).
	SkipDAD bool `json:"skipDAD,omitempty"`
	// HostShim keeps a host-side macvlan on the master and a host route
	// per container through it, so the host can reach its containers.
	HostShim bool `json:"hostShim,omitempty"`
	// HostShimName names the shim link (default "mns" + a hash of master).
	HostShimName string `json:"hostShimName,omitempty"`
	// HostShimAddresses gives the shim its own /32 or /128 addresses
	// (needed for IPv6, see macvlan.ShimSpec).
	HostShimAddresses []string `json:"hostShimAddresses,omitempty"`
	// LogFile receives the plugin's log lines (env MEDIANET_LOG_FILE
	// otherwise; without either, failures are logged to stderr).
	LogFile string `json:"logFile,omitempty"`
	Args    *struct {
		CNI struct {
			IPs []string `json:"ips,omitempty"`
		} `json:"cni"`
	} `json:"args,omitempty"`
}

// RuntimeConfig holds the capabilities the runtime passes; "ips" requests
// specific addresses (as Multus passes them, with or without a prefix length)
// and "mac" a fixed MAC address.
type RuntimeConfig struct {
	IPs []string `json:"ips,omitempty"`
	// MAC is the "mac" capability: a fixed MAC for the container link.
	MAC string `json:"mac,omitempty"`
}

// RouteConf is one element of "routes"; gw empty means on-link.
type RouteConf struct {
	Dst string `json:"dst"`
	GW  string `json:"gw,omitempty"`
}

// IPAMConf is the "ipam" object.
type IPAMConf struct {
	Type       string              `json:"type"`
	Subnet     string              `json:"subnet,omitempty"`
	Gateway    string              `json:"gateway,omitempty"`
	Subnets    []SubnetConf        `json:"subnets,omitempty"`
	Exclude    []string            `json:"exclude,omitempty"`
	BlockSize  int                 `json:"blockSize,omitempty"`
	BlockSize6 int                 `json:"blockSize6,omitempty"`
	Node       string              `json:"node,omitempty"`
	NodeRanges map[string][]string `json:"nodeRanges,omitempty"`
	DataDir    string              `json:"dataDir,omitempty"`
	// Routes is host-local's "routes": returned in the IPAM result.
	Routes []RouteConf `json:"routes,omitempty"`
	// Sticky, a Go duration ("30m"), keeps a deleted pod's addresses for
	// the same pod (K8S_POD_NAMESPACE/K8S_POD_NAME) that long.
	Sticky string    `json:"sticky,omitempty"`
	Etcd   *EtcdConf `json:"etcd,omitempty"`
	// Kubernetes claims blocks in the Kubernetes API instead of etcd
	// (ipam/kubestore, deploy/kubernetes/ipam-crds.yaml).
	Kubernetes *KubernetesConf `json:"kubernetes,omitempty"`
	// DHCP selects leases from the LAN's DHCP server (cni/dhcp.go).
	DHCP *DHCPConf `json:"dhcp,omitempty"`
	// ConflictCheck, a Go duration ("200ms"; "0" off), probes an address
	// for that long before the medianet plugin hands it out;
	// ConflictRetry is how long an address answered for is quarantined
	// (cni/conflict.go).
	ConflictCheck string `json:"conflictCheck,omitempty"`
	ConflictRetry string `json:"conflictRetry,omitempty"`
}

// SubnetConf is one element of "subnets": either a string "10.0.0.0/24" or
// an object {"subnet": "...", "gateway": "..."}.
type SubnetConf struct {
	Subnet  string `json:"subnet"`
	Gateway string `json:"gateway,omitempty"`
}

// UnmarshalJSON accepts the string form too.
func (s *SubnetConf) UnmarshalJSON(b []byte) error {
	var str string
	if err := json.Unmarshal(b, &str); err == nil {
		*s = SubnetConf{Subnet: str}
		return nil
	}
	type plain SubnetConf
	return json.Unmarshal(b, (*plain)(s))
}

// EtcdConf is the "etcd" object: cluster block claims (ipam/etcdstore).
type EtcdConf struct {
	Endpoints []string `json:"endpoints"`
	Prefix    string   `json:"prefix,omitempty"`
	// CAFile verifies the server; CertFile and KeyFile add a client
	// certificate (PEM files).
	CAFile   string `json:"caFile,omitempty"`
	CertFile string `json:"certFile,omitempty"`
	KeyFile  string `json:"keyFile,omitempty"`
	// Username and Password authenticate to etcd; PasswordFile reads the
	// password from a file instead of the network configuration.
	Username     string `json:"username,omitempty"`
	Password     string `json:"password,omitempty"`
	PasswordFile string `json:"passwordFile,omitempty"`
	// RequestTimeout bounds one etcd operation such as a block claim (a Go
	// duration, default "2s"); IdleRelease is how long an empty block is
	// kept before it is given back (default "10m", "-1s" never).
	RequestTimeout string `json:"requestTimeout,omitempty"`
	IdleRelease    string `json:"idleRelease,omitempty"`
}

// KubernetesConf is the "kubernetes" object: block claims as IPAMBlock
// objects in the Kubernetes API (ipam/kubestore).
type KubernetesConf struct {
	// Kubeconfig is the kubeconfig file the CNI plugin reads (on a node,
	// the one the DaemonSet writes); empty means in-cluster (the agent).
	Kubeconfig string `json:"kubeconfig,omitempty"`
	// RequestTimeout and IdleRelease as in EtcdConf.
	RequestTimeout string `json:"requestTimeout,omitempty"`
	IdleRelease    string `json:"idleRelease,omitempty"`
}

// Config is a parsed and checked configuration.
type Config struct {
	// Net is the configuration as given.
	Net NetConf
	// IPAM is the ipam configuration; IPAM.Node is set by Plugin.Load.
	IPAM ipam.Config
	// DataDir is the store's directory (DefaultDataDir when unset),
	// created with mode 0700 when missing.
	DataDir string
	// Workload is "namespace/name" of the pod when the runtime passes
	// K8S_POD_NAMESPACE and K8S_POD_NAME (set by Plugin.Load).
	Workload string
	// DHCP is set in DHCP mode (ipam.dhcp); IPAM then has no subnet.
	DHCP *DHCPConfig
	// Conflict is ipam.conflictCheck and ipam.conflictRetry.
	Conflict Conflict
}

// UsesEtcd reports whether the node's blocks are claimed in etcd:
// ipam.etcd is set and no static ipam.nodeRanges take precedence.
func (c *Config) UsesEtcd() bool {
	return c.Net.IPAM.Etcd != nil && c.IPAM.NodeRanges == nil
}

// UsesKubernetes reports whether the node's blocks are claimed in the
// Kubernetes API: ipam.kubernetes is set and no static ipam.nodeRanges
// take precedence.
func (c *Config) UsesKubernetes() bool {
	return c.Net.IPAM.Kubernetes != nil && c.IPAM.NodeRanges == nil
}

// ParseConfig parses a network configuration and checks its ipam object
// (everything except what depends on the node name). Errors wrap
// ipam.ErrConfig and name the JSON field at fault.
func ParseConfig(data []byte) (*Config, error) {
	var n NetConf
	if err := json.Unmarshal(data, &n); err != nil {
		return nil, jsonError(err)
	}
	c := &Config{Net: n, DataDir: n.IPAM.DataDir}
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	c.IPAM = ipam.Config{Network: n.Name, BlockSize: n.IPAM.BlockSize, BlockSize6: n.IPAM.BlockSize6, Node: n.IPAM.Node}
	if n.Name == "" {
		return nil, configErr("name is missing: give the network a name")
	}
	if n.IPAM.DHCP != nil {
		return parseDHCP(c)
	}
	subnets, err := parseSubnets(&n.IPAM)
	if err != nil {
		return nil, err
	}
	c.IPAM.Subnets = subnets
	for i, e := range n.IPAM.Exclude {
		p, err := ipam.ParseRange(e)
		if err != nil {
			return nil, configErr("ipam.exclude[%d]: %v", i, err)
		}
		c.IPAM.Exclude = append(c.IPAM.Exclude, p)
	}
	if err := parseNodeRanges(&n.IPAM, &c.IPAM); err != nil {
		return nil, err
	}
	if err := CheckIPAMRoutes(&n); err != nil {
		return nil, err
	}
	if n.IPAM.Sticky != "" {
		d, err := time.ParseDuration(n.IPAM.Sticky)
		if err != nil || d < 0 {
			return nil, configErr("ipam.sticky %q is not a duration such as \"30m\"", n.IPAM.Sticky)
		}
		c.IPAM.Sticky = d
	}
	if c.Conflict, err = parseConflict(&n.IPAM); err != nil {
		return nil, err
	}
	if n.IPAM.Etcd != nil && len(n.IPAM.Etcd.Endpoints) == 0 {
		return nil, configErr("ipam.etcd.endpoints is empty: list the etcd URLs or drop ipam.etcd")
	}
	if err := checkKubernetes(&n.IPAM); err != nil {
		return nil, err
	}
	if err := checkIPAM(&c.IPAM); err != nil {
		return nil, err
	}
	return c, nil
}

func parseSubnets(ic *IPAMConf) ([]ipam.Subnet, error) {
	type field struct{ name, subnet, gwName, gw string }
	var fields []field
	if ic.Subnet != "" {
		fields = append(fields, field{"ipam.subnet", ic.Subnet, "ipam.gateway", ic.Gateway})
	} else if ic.Gateway != "" {
		return nil, configErr("ipam.gateway %q is set without ipam.subnet", ic.Gateway)
	}
	for i, s := range ic.Subnets {
		fields = append(fields, field{fmt.Sprintf("ipam.subnets[%d]", i), s.Subnet, fmt.Sprintf("ipam.subnets[%d].gateway", i), s.Gateway})
	}
	if len(fields) == 0 {
		return nil, configErr("ipam.subnet is missing: set ipam.subnet (e.g. \"192.168.100.0/24\") or ipam.subnets")
	}
	var out []ipam.Subnet
	for _, f := range fields {
		p, err := netip.ParsePrefix(f.subnet)
		if err != nil {
			return nil, configErr("%s %q is not a prefix such as \"192.168.100.0/24\"", f.name, f.subnet)
		}
		if p.Masked() != p {
			return nil, configErr("%s %q has host bits set; did you mean %q?", f.name, f.subnet, p.Masked().String())
		}
		s := ipam.Subnet{Prefix: p}
		if f.gw != "" {
			if s.Gateway, err = netip.ParseAddr(f.gw); err != nil {
				return nil, configErr("%s %q is not an address", f.gwName, f.gw)
			}
			if !p.Contains(s.Gateway) {
				return nil, configErr("%s %q is outside %s %q", f.gwName, f.gw, f.name, f.subnet)
			}
		}
		out = append(out, s)
	}
	return out, nil
}

func parseNodeRanges(ic *IPAMConf, c *ipam.Config) error {
	if ic.NodeRanges == nil {
		return nil
	}
	c.NodeRanges = map[string][]netip.Prefix{}
	for node, ranges := range ic.NodeRanges {
		for i, r := range ranges {
			p, err := ipam.ParseRange(r)
			if err != nil {
				return configErr("ipam.nodeRanges[%q][%d]: %v", node, i, err)
			}
			c.NodeRanges[node] = append(c.NodeRanges[node], p)
		}
	}
	return nil
}

// checkIPAM runs ipam's checks that do not need the node name.
func checkIPAM(c *ipam.Config) error {
	probe := *c
	if probe.NodeRanges != nil {
		if err := ipam.ValidateNodeRanges(c.Subnets, c.NodeRanges); err != nil {
			return fmt.Errorf("ipam.%w", err)
		}
		probe.NodeRanges = nil
	}
	if err := probe.Validate(); err != nil {
		return fmt.Errorf("ipam: %w", err)
	}
	return nil
}

func configErr(format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, ipam.ErrConfig)...)
}

// jsonError names the field of a JSON type error.
func jsonError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return configErr("%s: got a JSON %s, want %s", te.Field, te.Value, jsonType(te.Type.Kind().String()))
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return configErr("network configuration is not valid JSON at byte %d: %v", se.Offset, err)
	}
	return configErr("network configuration: %v", err)
}

func jsonType(kind string) string {
	switch kind {
	case "int", "int64", "uint", "float64":
		return "a number"
	case "slice":
		return "a list"
	case "map", "struct", "ptr":
		return "an object"
	}
	return "a " + kind
}

// checkKubernetes checks the "kubernetes" object: one cluster store only,
// durations that parse. Sticky addresses work as with etcd (IPAMSticky
// records, ipam/kubestore/sticky.go).
func checkKubernetes(ic *IPAMConf) error {
	k := ic.Kubernetes
	if k == nil {
		return nil
	}
	if ic.Etcd != nil {
		return configErr("ipam.etcd and ipam.kubernetes are both set: keep one (blocks are claimed in one place)")
	}
	for _, f := range []struct{ name, v string }{
		{"ipam.kubernetes.requestTimeout", k.RequestTimeout},
		{"ipam.kubernetes.idleRelease", k.IdleRelease},
	} {
		if f.v == "" {
			continue
		}
		if _, err := time.ParseDuration(f.v); err != nil {
			return configErr("%s %q is not a duration such as \"2s\"", f.name, f.v)
		}
	}
	if k.Kubeconfig != "" && !filepath.IsAbs(k.Kubeconfig) {
		return configErr("ipam.kubernetes.kubeconfig %q must be an absolute path (the runtime runs the plugin from any directory)", k.Kubeconfig)
	}
	return nil
}
