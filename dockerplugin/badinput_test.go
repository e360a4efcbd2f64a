package dockerplugin

import (
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

func countRecords(t *testing.T, h *harness, bucket []byte) int {
	t.Helper()
	n := 0
	err := h.d.st.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucket).ForEach(func(_, _ []byte) error { n++; return nil })
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestBadPoolRequests(t *testing.T) {
	h := newHarness(t, Config{Node: "node-c"}, newFakeLinks())
	h.pool("10.50.0.0/24", "", "", nil) // for the overlap case
	for _, tc := range []struct {
		name string
		req  requestPoolRequest
		want string // in the error
	}{
		{"no subnet", requestPoolRequest{}, "--subnet is required"},
		{"host bits", requestPoolRequest{Pool: "10.60.0.5/24"}, "--subnet"},
		{"family", requestPoolRequest{Pool: "10.60.0.0/24", V6: true}, "--subnet"},
		{"range outside", requestPoolRequest{Pool: "10.60.0.0/24", SubPool: "10.61.0.0/28"}, "--ip-range"},
		{"block size", requestPoolRequest{Pool: "10.60.0.0/24", Options: map[string]string{"block-size": "big"}}, "block-size"},
		{"block size range", requestPoolRequest{Pool: "10.60.0.0/24", Options: map[string]string{"block-size": "8"}}, "blockSize"},
		{"node ranges syntax", requestPoolRequest{Pool: "10.60.0.0/24", Options: map[string]string{"node-ranges": "node-c"}}, "node-ranges"},
		{"node ranges overlap", requestPoolRequest{Pool: "10.60.0.0/24", Options: map[string]string{"node-ranges": "node-c=10.60.0.0/27,node-d=10.60.0.16/28"}}, "overlaps"},
		{"node absent", requestPoolRequest{Pool: "10.60.0.0/24", Options: map[string]string{"node-ranges": "node-a=10.60.0.0/28"}}, `"node-c"`},
		{"unknown option", requestPoolRequest{Pool: "10.60.0.0/24", Options: map[string]string{"blocksize": "28"}}, "--ipam-opt blocksize"},
		{"overlap", requestPoolRequest{Pool: "10.50.0.128/25"}, "overlaps 10.50.0.0/24"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := h.call("IpamDriver.RequestPool", tc.req, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one containing %q", err, tc.want)
			}
			if got := countRecords(t, h, bucketPools); got != 1 {
				t.Errorf("pools after the error = %d, want 1", got)
			}
		})
	}
}

func TestBadAddressRequests(t *testing.T) {
	h := newHarness(t, Config{}, newFakeLinks())
	pid := h.pool("10.51.0.0/24", "", "", nil)
	for _, tc := range []struct{ pool, addr, want string }{
		{pid, "10.52.0.9", "outside --subnet 10.51.0.0/24"},
		{pid, "10.51.0.1", "the gateway of --subnet"},
		{pid, "10.51.0.255", "broadcast"},
		{pid, "not-an-ip", "address"},
		{"nope", "", "unknown"},
	} {
		if _, err := h.addr(tc.pool, tc.addr); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("RequestAddress(%q, %q): err = %v, want one containing %q", tc.pool, tc.addr, err, tc.want)
		}
	}
	if got := allocations(t, h); len(got) != 0 {
		t.Errorf("allocations after failed requests = %v, want none", got)
	}
}

func TestBadNetworks(t *testing.T) {
	links := newFakeLinks("lan0")
	h := newHarness(t, Config{}, links)
	v4 := []ipamData{{Pool: "10.53.0.0/24", Gateway: "10.53.0.1/24"}}
	for _, tc := range []struct {
		name string
		opts map[string]string
		want string
	}{
		{"no parent", map[string]string{}, "-o parent is required"},
		{"absent parent", map[string]string{"parent": "eth404"}, "-o parent=eth404"},
		{"absent parent with vlan", map[string]string{"parent": "eth404", "vlan": "7"}, "-o parent=eth404"},
		{"bad parent", map[string]string{"parent": "a/b"}, "-o parent"},
		{"bad mode", map[string]string{"parent": "lan0", "macvlan_mode": "bridged"}, "-o macvlan_mode"},
		{"bad vlan", map[string]string{"parent": "lan0", "vlan": "5000"}, "-o vlan"},
		{"typo", map[string]string{"partent": "lan0"}, "-o partent"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := h.call("NetworkDriver.CreateNetwork", createNetworkRequest{NetworkID: "bad", Options: generic(tc.opts), IPv4Data: v4}, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one containing %q", err, tc.want)
			}
			if got := countRecords(t, h, bucketNetworks); got != 0 {
				t.Errorf("networks after the error = %d, want 0", got)
			}
			if len(links.vlans) != 0 {
				t.Errorf("vlan links after the error: %v", links.vlans)
			}
		})
	}
}

func TestJoinFailureLeavesNoLink(t *testing.T) {
	links := newFakeLinks("lan0")
	h := newHarness(t, Config{}, links)
	h.must("NetworkDriver.CreateNetwork", createNetworkRequest{NetworkID: "n", Options: generic(map[string]string{"parent": "lan0"})}, nil)
	h.must("NetworkDriver.CreateEndpoint", createEndpointRequest{NetworkID: "n", EndpointID: "e", Interface: &endpointInterface{Address: "10.54.0.2/24"}}, nil)
	links.failOn = linkName("e")
	if err := h.call("NetworkDriver.Join", joinRequest{NetworkID: "n", EndpointID: "e"}, nil); err == nil {
		t.Fatal("Join with failing link creation: no error")
	}
	if got := links.names(); len(got) != 0 {
		t.Errorf("links after failed Join = %v, want none", got)
	}
	if err := h.call("NetworkDriver.Join", joinRequest{NetworkID: "n", EndpointID: "missing"}, nil); err == nil || !strings.Contains(err.Error(), "unknown") {
		t.Errorf("Join of unknown endpoint: err = %v, want unknown", err)
	}
}

func TestSharedVLAN(t *testing.T) {
	links := newFakeLinks("lan0")
	h := newHarness(t, Config{}, links)
	opts := generic(map[string]string{"parent": "lan0", "vlan": "42"})
	h.must("NetworkDriver.CreateNetwork", createNetworkRequest{NetworkID: "a", Options: opts}, nil)
	h.must("NetworkDriver.CreateNetwork", createNetworkRequest{NetworkID: "b", Options: opts}, nil)
	h.must("NetworkDriver.DeleteNetwork", networkIDRequest{NetworkID: "a"}, nil)
	if !links.vlans["lan0.42"] {
		t.Fatal("vlan link lan0.42 removed while network b uses it")
	}
	h.must("NetworkDriver.DeleteNetwork", networkIDRequest{NetworkID: "b"}, nil)
	h.must("NetworkDriver.DeleteNetwork", networkIDRequest{NetworkID: "b"}, nil)
	if links.vlans["lan0.42"] {
		t.Error("vlan link lan0.42 left after its last network")
	}
}

func TestDeleteNetworkRemovesLeftovers(t *testing.T) {
	links := newFakeLinks("lan0")
	h := newHarness(t, Config{}, links)
	h.must("NetworkDriver.CreateNetwork", createNetworkRequest{NetworkID: "n", Options: generic(map[string]string{"parent": "lan0"})}, nil)
	h.must("NetworkDriver.CreateEndpoint", createEndpointRequest{NetworkID: "n", EndpointID: "e", Interface: &endpointInterface{Address: "10.56.0.2/24"}}, nil)
	h.must("NetworkDriver.Join", joinRequest{NetworkID: "n", EndpointID: "e"}, nil)
	h.must("NetworkDriver.DeleteNetwork", networkIDRequest{NetworkID: "n"}, nil)
	if got := links.names(); len(got) != 0 {
		t.Errorf("links after DeleteNetwork = %v, want none", got)
	}
	for _, b := range [][]byte{bucketNetworks, bucketEndpoints} {
		if got := countRecords(t, h, b); got != 0 {
			t.Errorf("%s records after DeleteNetwork = %d, want 0", b, got)
		}
	}
}
