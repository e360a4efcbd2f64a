// Command medianetctl is the operator CLI over medianet's IPAM store:
// list, verify, release, gc and check. See docs/ipam.md.
package main

import (
	"os"

	"github.com/medianet/medianet/cmd/medianetctl/ctl"
)

func main() {
	os.Exit(ctl.Run(os.Args[1:], os.Stdout, os.Stderr))
}
