// Command medianet-ipam is medianet's CNI IPAM plugin: per-node address
// blocks in an embedded store, from static node ranges or claimed in etcd,
// for the medianet plugin, the reference macvlan and ipvlan plugins, and
// Multus. It speaks CNI 0.3.0 to 1.1.0 (ADD, DEL, CHECK, GC, STATUS); see
// docs/ipam.md. Networks with ipam.etcd are served by medianet-ipam-etcd,
// which this program runs by exec, so that it never loads the etcd client
// itself.
package main

import (
	"io"
	"os"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/medianet/medianet/cni"
)

func main() {
	var p cni.Plugin
	const about = "medianet-ipam: per-node IPAM blocks (docs/ipam.md)"
	if c := os.Getenv("CNI_COMMAND"); c == "" || c == "VERSION" {
		skel.PluginMainFuncs(p.Funcs(), cni.Versions, about) // no network configuration to look at
		return
	}
	conf, err := io.ReadAll(os.Stdin)
	if err != nil {
		_ = types.NewError(types.ErrIOFailure, "medianet-ipam: read the configuration on stdin: "+err.Error(), "").Print()
		os.Exit(1)
	}
	if handled, code := cni.ForwardEtcd(conf); handled {
		os.Exit(code)
	}
	if err := replaceStdin(conf); err != nil {
		_ = types.NewError(types.ErrIOFailure, "medianet-ipam: "+err.Error(), "").Print()
		os.Exit(1)
	}
	skel.PluginMainFuncs(p.Funcs(), cni.Versions, about)
}

// replaceStdin gives skel, which reads os.Stdin, the configuration read
// already.
func replaceStdin(conf []byte) error {
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	go func() {
		_, _ = w.Write(conf)
		w.Close()
	}()
	os.Stdin = r
	return nil
}
