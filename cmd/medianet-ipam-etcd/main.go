// Command medianet-ipam-etcd runs medianet-ipam's verbs for networks whose
// blocks are claimed in etcd (ipam.etcd). medianet-ipam and the medianet
// plugin run it by exec for those networks only, so that the etcd client
// is never loaded for the others; it is not meant to be named in a
// configuration (use "type": "medianet-ipam"). See docs/ipam-etcd.md.
package main

import (
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/medianet/medianet/cni"
	"github.com/medianet/medianet/cni/etcdsource"
)

func main() {
	p := cni.Plugin{Source: etcdsource.Source}
	skel.PluginMainFuncs(p.Funcs(), cni.Versions, "medianet-ipam-etcd: medianet-ipam for networks with ipam.etcd (docs/ipam-etcd.md)")
}
