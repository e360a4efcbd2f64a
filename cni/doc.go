// Package cni adapts medianet's IPAM to the CNI specification (0.3.0 to
// 1.1.0): it parses the network configuration of DESIGN.md, resolves the
// node name and requested addresses, runs the IPAM verbs ADD, DEL, CHECK,
// GC and STATUS against the store, and chooses CNI error codes in one place
// (errors.go).
//
// Plugin's verb methods return results and errors instead of printing, so
// the main medianet plugin can run IPAM in-process; Plugin.Funcs wraps them
// for skel.PluginMainFuncs in cmd/medianet-ipam. Nothing here writes to
// stdout except the result and error printing done by skel.
package cni
