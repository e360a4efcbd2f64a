// Command medianet-ipam is medianet's CNI IPAM plugin: per-node address
// blocks in an embedded store, for the medianet plugin, the reference
// macvlan and ipvlan plugins, and Multus. It speaks CNI 0.3.0 to 1.1.0
// (ADD, DEL, CHECK, GC, STATUS); see docs/ipam.md.
package main

import (
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/medianet/medianet/cni"
)

func main() {
	var p cni.Plugin
	skel.PluginMainFuncs(p.Funcs(), cni.Versions, "medianet-ipam: per-node IPAM blocks (docs/ipam.md)")
}
