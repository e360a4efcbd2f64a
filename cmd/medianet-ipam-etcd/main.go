// Command medianet-ipam is medianet's CNI IPAM plugin: per-node address
// blocks in an embedded store, from static node ranges or claimed in etcd,
// for the medianet plugin, the reference macvlan and ipvlan plugins, and
// Multus. It speaks CNI 0.3.0 to 1.1.0 (ADD, DEL, CHECK, GC, STATUS); see
// docs/ipam.md.
package main

import (
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/medianet/medianet/cni"
	"github.com/medianet/medianet/cni/etcdsource"
)

func main() {
	p := cni.Plugin{Source: etcdsource.Source}
	skel.PluginMainFuncs(p.Funcs(), cni.Versions, "medianet-ipam: per-node IPAM blocks (docs/ipam.md)")
}
