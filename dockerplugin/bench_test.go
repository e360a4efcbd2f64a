package dockerplugin

import (
	"fmt"
	"net/netip"
	"testing"
)

// BenchmarkContainerLifecycle is medianetd's share of one container's
// start and removal: the six calls Docker makes (called directly, without
// HTTP), with the real state file and IPAM store (fsync on) and fake links.
func BenchmarkContainerLifecycle(b *testing.B) {
	dir := b.TempDir()
	st, err := openState(dir)
	if err != nil {
		b.Fatal(err)
	}
	d := newDriver(Config{Scope: ScopeLocal, Node: "n"}, st, &ipamBook{dir: dir}, newFakeLinks("lan0"))
	defer d.Close()
	nd, id := (*networkDriver)(d), (*ipamDriver)(d)
	p, err := id.RequestPool(&requestPoolRequest{AddressSpace: LocalAddressSpace, Pool: "10.60.0.0/16"})
	if err != nil {
		b.Fatal(err)
	}
	gw := map[string]string{requestAddressType: gatewayRequest}
	if _, err := id.RequestAddress(&requestAddressRequest{PoolID: p.PoolID, Options: gw}); err != nil {
		b.Fatal(err)
	}
	if _, err := nd.CreateNetwork(&createNetworkRequest{NetworkID: "n", Options: generic(map[string]string{"parent": "lan0"})}); err != nil {
		b.Fatal(err)
	}
	mac := map[string]string{macAddressOption: "02:42:00:00:00:01"}
	b.ResetTimer()
	for i := range b.N {
		a, err := id.RequestAddress(&requestAddressRequest{PoolID: p.PoolID, Options: mac})
		if err != nil {
			b.Fatal(err)
		}
		ep := fmt.Sprintf("ep%020d", i)
		steps := []func() error{
			func() error {
				_, err := nd.CreateEndpoint(&createEndpointRequest{NetworkID: "n", EndpointID: ep, Interface: &endpointInterface{Address: a.Address}})
				return err
			},
			func() error { _, err := nd.Join(&joinRequest{NetworkID: "n", EndpointID: ep}); return err },
			func() error { _, err := nd.Leave(&endpointRequest{NetworkID: "n", EndpointID: ep}); return err },
			func() error {
				_, err := nd.DeleteEndpoint(&endpointRequest{NetworkID: "n", EndpointID: ep})
				return err
			},
			func() error {
				_, err := id.ReleaseAddress(&releaseAddressRequest{PoolID: p.PoolID, Address: netip.MustParsePrefix(a.Address).Addr().String()})
				return err
			},
		}
		for _, s := range steps {
			if err := s(); err != nil {
				b.Fatal(err)
			}
		}
	}
}
