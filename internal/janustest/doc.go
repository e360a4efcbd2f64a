// Package janustest runs Debian's Janus (the janus package, 1.1.2) in
// containers of the test's own Docker hosts and calls it with a real
// WebRTC client.
//
// There is no registry: Rootfs builds a root file system tarball from the
// files the janus package installed (the binary, the plugins and
// transports the tests load, and every library ldd names for them), the
// Janus configuration a Config describes, busybox for the entrypoint's
// shell and rtpfeed (internal/cmd/rtpfeed, built here), which feeds the
// Streaming plugin's mountpoint with RTP from inside the container.
// Import loads it with docker import.
//
// The client (client.go) is a pion/webrtc peer that talks to Janus over
// its HTTP API. It runs as a child process in a network namespace (a
// client behind one of natlab's NATs): the test binary started again with
// an environment that makes MaybeRunClient, called first in TestMain, run
// one call and print its Result as JSON.
package janustest
