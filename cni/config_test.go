package cni

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/medianet/medianet/ipam"
)

const designConf = `{
  "cniVersion": "1.1.0", "name": "media", "type": "medianet",
  "master": "eth1", "mode": "bridge", "mtu": 1500, "vlan": 100,
  "ipam": {
    "type": "medianet-ipam",
    "subnet": "192.168.100.0/24", "gateway": "192.168.100.254",
    "exclude": ["192.168.100.1", "192.168.100.2/31"],
    "blockSize": 28, "node": "node-a",
    "nodeRanges": {"node-a": ["192.168.100.0/28"], "node-b": ["192.168.100.16/28"]},
    "dataDir": "/var/lib/medianet",
    "etcd": {"endpoints": ["http://127.0.0.1:2379"], "prefix": "/medianet"}
  }
}`

func TestParseDesignConfig(t *testing.T) {
	c, err := ParseConfig([]byte(designConf))
	if err != nil {
		t.Fatalf("ParseConfig(docs/design.md example): %v", err)
	}
	checks := []struct{ name, got, want string }{
		{"master", c.Net.Master, "eth1"},
		{"mode", c.Net.Mode, "bridge"},
		{"subnet", c.IPAM.Subnets[0].Prefix.String(), "192.168.100.0/24"},
		{"gateway", c.IPAM.Subnets[0].Gateway.String(), "192.168.100.254"},
		{"exclude", c.IPAM.Exclude[1].String(), "192.168.100.2/31"},
		{"node-b", c.IPAM.NodeRanges["node-b"][0].String(), "192.168.100.16/28"},
		{"dataDir", c.DataDir, "/var/lib/medianet"},
		{"etcd", c.Net.IPAM.Etcd.Prefix, "/medianet"},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %q, want %q", ch.name, ch.got, ch.want)
		}
	}
	if c.Net.MTU != 1500 || c.Net.VLAN != 100 || c.IPAM.BlockSize != 28 {
		t.Errorf("mtu, vlan, blockSize = %d, %d, %d, want 1500, 100, 28", c.Net.MTU, c.Net.VLAN, c.IPAM.BlockSize)
	}
}

func TestParseDualStack(t *testing.T) {
	c, err := ParseConfig([]byte(`{"name":"m","ipam":{"subnets":["10.0.0.0/24",{"subnet":"fd00::/64","gateway":"fd00::fe"}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.IPAM.Subnets) != 2 || c.IPAM.Subnets[1].Gateway.String() != "fd00::fe" || c.DataDir != DefaultDataDir {
		t.Errorf("subnets = %+v, dataDir %s", c.IPAM.Subnets, c.DataDir)
	}
}

func TestParseConfigErrors(t *testing.T) {
	tests := []struct {
		name, conf, msg string
	}{
		{"not json", `{"name":`, "not valid JSON"},
		{"no name", `{"ipam":{"subnet":"10.0.0.0/24"}}`, "name is missing"},
		{"no subnet", `{"name":"m","ipam":{}}`, "ipam.subnet is missing"},
		{"bad subnet", `{"name":"m","ipam":{"subnet":"10.0.0/24"}}`, `ipam.subnet "10.0.0/24" is not a prefix`},
		{"host bits", `{"name":"m","ipam":{"subnet":"10.0.0.7/24"}}`, `did you mean "10.0.0.0/24"`},
		{"gw outside", `{"name":"m","ipam":{"subnet":"192.168.100.0/24","gateway":"10.1.0.1"}}`, `ipam.gateway "10.1.0.1" is outside ipam.subnet "192.168.100.0/24"`},
		{"gw v6 outside", `{"name":"m","ipam":{"subnets":[{"subnet":"fd00::/64","gateway":"fd01::1"}]}}`, `ipam.subnets[0].gateway "fd01::1" is outside ipam.subnets[0] "fd00::/64"`},
		{"gw bad", `{"name":"m","ipam":{"subnet":"10.0.0.0/24","gateway":"x"}}`, `ipam.gateway "x" is not an address`},
		{"gw alone", `{"name":"m","ipam":{"gateway":"10.0.0.1"}}`, "without ipam.subnet"},
		{"exclude bad", `{"name":"m","ipam":{"subnet":"10.0.0.0/24","exclude":["10.0.0.1","nope"]}}`, "ipam.exclude[1]"},
		{"exclude all", `{"name":"m","ipam":{"subnet":"10.0.0.0/30","exclude":["10.0.0.0/30"]}}`, "no usable address"},
		{"ranges overlap", `{"name":"m","ipam":{"subnet":"10.0.0.0/24","nodeRanges":{"a":["10.0.0.0/27"],"b":["10.0.0.16/28"]}}}`,
			`ipam.nodeRanges: 10.0.0.0/27 of node "a" overlaps 10.0.0.16/28 of node "b"`},
		{"range outside", `{"name":"m","ipam":{"subnet":"10.0.0.0/24","nodeRanges":{"a":["10.0.1.0/27"]}}}`, `nodeRanges["a"]: 10.0.1.0/27 is outside`},
		{"range bad", `{"name":"m","ipam":{"subnet":"10.0.0.0/24","nodeRanges":{"a":["10.0.0.5/27"]}}}`, `ipam.nodeRanges["a"][0]`},
		{"blockSize type", `{"name":"m","ipam":{"subnet":"10.0.0.0/24","blockSize":"28"}}`, "ipam.blockSize: got a JSON string, want a number"},
		{"exclude type", `{"name":"m","ipam":{"subnet":"10.0.0.0/24","exclude":"10.0.0.1"}}`, "ipam.exclude: got a JSON string, want a list"},
		{"blockSize range", `{"name":"m","ipam":{"subnet":"10.0.0.0/24","blockSize":8}}`, "blockSize 8"},
		{"etcd empty", `{"name":"m","ipam":{"subnet":"10.0.0.0/24","etcd":{}}}`, "ipam.etcd.endpoints is empty"},
		{"etcd and kubernetes", `{"name":"m","ipam":{"subnet":"10.0.0.0/24","etcd":{"endpoints":["http://127.0.0.1:2379"]},"kubernetes":{}}}`, "ipam.etcd and ipam.kubernetes are both set"},
		{"kubernetes sticky bad", `{"name":"m","ipam":{"subnet":"10.0.0.0/24","sticky":"30","kubernetes":{}}}`, "ipam.sticky \"30\" is not a duration"},
		{"kubernetes timeout", `{"name":"m","ipam":{"subnet":"10.0.0.0/24","kubernetes":{"requestTimeout":"2"}}}`, "ipam.kubernetes.requestTimeout \"2\""},
		{"kubernetes relative", `{"name":"m","ipam":{"subnet":"10.0.0.0/24","kubernetes":{"kubeconfig":"kube.conf"}}}`, "ipam.kubernetes.kubeconfig \"kube.conf\" must be an absolute path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tt.conf))
			if !errors.Is(err, ipam.ErrConfig) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("ParseConfig() = %v, want ErrConfig containing %q", err, tt.msg)
			}
			if code := Error(err).Code; code != 7 {
				t.Errorf("CNI code = %d, want 7", code)
			}
		})
	}
}

// TestParseKubernetesSticky: sticky addresses are accepted with the
// kubernetes source (IPAMSticky records), with the period parsed.
func TestParseKubernetesSticky(t *testing.T) {
	c, err := ParseConfig([]byte(`{"name":"m","ipam":{"subnet":"10.0.0.0/24","sticky":"30m","kubernetes":{"kubeconfig":"/etc/medianet/kube/kubeconfig"}}}`))
	if err != nil {
		t.Fatalf("ParseConfig: %v", err)
	}
	if !c.UsesKubernetes() || c.IPAM.Sticky != 30*time.Minute {
		t.Errorf("UsesKubernetes %t, sticky %s; want true, 30m", c.UsesKubernetes(), c.IPAM.Sticky)
	}
}

func TestNodeOrder(t *testing.T) {
	c, err := ParseConfig([]byte(`{"name":"m","ipam":{"subnet":"10.0.0.0/24"}}`))
	if err != nil {
		t.Fatal(err)
	}
	withNode := *c
	withNode.Net.IPAM.Node = "from-config"
	tests := []struct {
		name string
		c    *Config
		env  map[string]string
		args map[string]string
		want string
	}{
		{"config wins", &withNode, map[string]string{"MEDIANET_NODE": "e"}, map[string]string{"K8S_NODE_NAME": "k"}, "from-config"},
		{"MEDIANET_NODE", c, map[string]string{"MEDIANET_NODE": "e", "NODE_NAME": "n"}, map[string]string{"K8S_NODE_NAME": "k"}, "e"},
		{"K8S_NODE_NAME", c, map[string]string{"NODE_NAME": "n"}, map[string]string{"K8S_NODE_NAME": "k"}, "k"},
		{"NODE_NAME", c, map[string]string{"NODE_NAME": "n"}, nil, "n"},
		{"hostname", c, nil, nil, "host-1"},
	}
	for _, tt := range tests {
		env := Env{Getenv: func(k string) string { return tt.env[k] }, Hostname: func() (string, error) { return "host-1", nil }}
		got, err := env.Node(tt.c, tt.args)
		if err != nil || got != tt.want {
			t.Errorf("%s: Node() = %q, %v, want %q", tt.name, got, err, tt.want)
		}
	}
}

func TestRequestedIPs(t *testing.T) {
	c, err := ParseConfig([]byte(`{"name":"m","ipam":{"subnet":"10.0.0.0/24"},"runtimeConfig":{"ips":["10.0.0.5/24","fd00::5"]},"args":{"cni":{"ips":["10.0.0.5"]}}}`))
	if err != nil {
		t.Fatal(err)
	}
	args, err := ParseArgs("IgnoreUnknown=1;IP=10.0.0.9,fd00::9;K8S_POD_NAME=p")
	if err != nil {
		t.Fatal(err)
	}
	got, err := RequestedIPs(c, args)
	if err != nil {
		t.Fatal(err)
	}
	var s []string
	for _, a := range got {
		s = append(s, a.String())
	}
	if want := "10.0.0.5 fd00::5 10.0.0.9 fd00::9"; strings.Join(s, " ") != want {
		t.Errorf("RequestedIPs = %v, want %s", s, want)
	}
	if _, err := RequestedIPs(c, map[string]string{"IP": "10.0.0"}); !errors.Is(err, ipam.ErrConfig) || !strings.Contains(err.Error(), "CNI_ARGS IP") {
		t.Errorf("bad IP= error = %v, want ErrConfig naming CNI_ARGS IP", err)
	}
	if _, err := ParseArgs("IP"); !errors.Is(err, ipam.ErrConfig) {
		t.Errorf("ParseArgs(\"IP\") error = %v, want ErrConfig", err)
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(designConf))
	f.Add([]byte(`{"name":"m","ipam":{"subnets":["10.0.0.0/24",{"subnet":"fd00::/64"}]}}`))
	f.Add([]byte(`{"name":"m","ipam":{"subnet":"fd00::/120","exclude":["fd00::/121"],"nodeRanges":{"a":["fd00::80/121"]}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig(data)
		if err != nil {
			if !errors.Is(err, ipam.ErrConfig) {
				t.Fatalf("ParseConfig error %v does not wrap ErrConfig", err)
			}
			return
		}
		if len(c.IPAM.Subnets) == 0 || c.IPAM.Network == "" || c.DataDir == "" {
			t.Fatalf("accepted config without subnet, name or dataDir: %+v", c)
		}
		for _, s := range c.IPAM.Subnets {
			if s.Gateway.IsValid() && !s.Prefix.Contains(s.Gateway) {
				t.Fatalf("accepted gateway %s outside %s", s.Gateway, s.Prefix)
			}
		}
	})
}
