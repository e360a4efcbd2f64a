// Command medianet-ipam-kube runs medianet-ipam's verbs for networks whose
// blocks are claimed in the Kubernetes API (ipam.kubernetes). medianet-ipam
// and the medianet plugin run it by exec for those networks only, so that
// client-go is never loaded for the others; it is not meant to be named in
// a configuration (use "type": "medianet-ipam"). See docs/ipam.md.
package main

import (
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/medianet/medianet/cni"
	"github.com/medianet/medianet/cni/kubesource"
)

func main() {
	p := cni.Plugin{Source: kubesource.Source}
	skel.PluginMainFuncs(p.Funcs(), cni.Versions, "medianet-ipam-kube: medianet-ipam for networks with ipam.kubernetes (docs/ipam.md)")
}
