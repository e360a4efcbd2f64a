// Package cni adapts medianet to the CNI specification (0.3.0 to 1.1.0).
//
// Plugin is the IPAM (medianet-ipam): it parses the network configuration
// of docs/design.md, resolves the node name and requested addresses, and
// runs the IPAM verbs ADD, DEL, CHECK, GC and STATUS against the store. Its verb
// methods return results and errors instead of printing, so the main plugin
// runs IPAM in-process; Plugin.Funcs wraps them for skel.PluginMainFuncs in
// cmd/medianet-ipam.
//
// Main is the main plugin (cmd/medianet): ParseMainConfig reads the link
// keys (master, mode, mtu, vlan, mac, routes, skipDAD, hostShim, logFile),
// and Main's verbs create, configure, check and delete the macvlan link
// through package macvlan, with IPAM in-process for ipam.type medianet-ipam
// and by exec (CNI_PATH) for any other type. ADD undoes everything on
// failure (named result, deferred undo); DEL deletes the link before it
// releases the addresses and succeeds when things are gone.
//
// CNI error codes are chosen in one place (errors.go). Nothing here writes
// to stdout except the result and error printing done through skel; logs go
// to logFile or stderr.
package cni
