// Command medianet is medianet's CNI main plugin: a macvlan link on the
// LAN in the container's network namespace, with addresses from
// medianet-ipam run in-process (any other ipam type is run by exec, as the
// reference plugins do). It speaks CNI 0.3.0 to 1.1.0 (ADD, DEL, CHECK, GC,
// STATUS); see docs/kubernetes.md.
package main

import (
	"log"
	"os"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/medianet/medianet/cni"
)

func main() {
	var m cni.Main
	e := skel.PluginMainFuncsWithError(m.Funcs(), cni.Versions, "medianet: macvlan CNI plugin with per-node IPAM blocks (docs/kubernetes.md)")
	if e = cni.SkelError(e); e != nil {
		if err := e.Print(); err != nil {
			log.Print("medianet: write error JSON to stdout: ", err)
		}
		os.Exit(1)
	}
}
