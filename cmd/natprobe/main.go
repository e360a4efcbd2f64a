// Command natprobe probes NAT behaviour with RFC 5780 STUN tests, serves
// those tests, and predicts ICE between two probed hosts.
//
//	natprobe probe --server HOST:PORT [--server HOST:PORT ...] [--netns PATH | --container ID]
//	               [--local-port N] [--timeout 5s] [--lifetime 3m] [--json]
//	natprobe serve --primary IP:PORT [--alternate IP:PORT] [--json-log]
//	natprobe ice A.json B.json [--json]
//	natprobe turn --server turn:HOST:PORT[?transport=udp|tcp] | turns:HOST:PORT
//	              (--user U --password-file FILE | --secret-file FILE [--user ID] [--ttl 1h]) [--ca FILE]
//	              [--netns PATH | --container ID] [--timeout 5s] [--json]
//	natprobe check --server HOST:PORT [--turn URI ...] [turn's credential flags]
//	               [--netns PATH | --container ID] [--local-port N] [--timeout 5s] [--json]
//
// Exit codes: 0 verdict ok (ice: a direct pair forms; turn: the relay
// works), 3 needs-turn, 4 blocked (turn: unreachable), 5 unknown (the
// servers given cannot decide), 6 turn refused, 7 turn relay failed, 1
// usage or runtime error; check exits with its worst finding's code.
package main

import (
	"fmt"
	"io"
	"os"
)

const usage = `usage:
  natprobe probe --server HOST:PORT [--server HOST:PORT ...] [--netns PATH | --container ID]
                 [--local-port N] [--timeout 5s] [--lifetime 3m] [--json]
  natprobe serve --primary IP:PORT [--alternate IP:PORT] [--json-log]
  natprobe ice A.json B.json [--json]
  natprobe turn --server turn:HOST:PORT[?transport=udp|tcp] | turns:HOST:PORT
                (--user U --password-file FILE | --secret-file FILE [--user ID] [--ttl 1h]) [--ca FILE]
                [--netns PATH | --container ID [--runtime docker|podman]] [--timeout 5s] [--json]
  natprobe check --server HOST:PORT [--server ...] [--turn URI ...] [--user U --password-file FILE | --secret-file FILE] [--ca FILE]
                 [--netns PATH | --container ID [--runtime docker|podman]] [--local-port N] [--timeout 5s] [--json]
                 (turn and check: the password or secret may also come from env NATPROBE_TURN_PASSWORD or
                 NATPROBE_TURN_SECRET, or from --password P or --secret S, which other local users can read)
exit codes: 0 ok, 3 needs-turn, 4 blocked or unreachable, 5 unknown, 6 turn refused, 7 turn relay failed, 1 error
(check: the worst finding's code)
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 1
	}
	switch args[0] {
	case "probe":
		return probeCmd(args[1:], stdout, stderr)
	case "serve":
		return serveCmd(args[1:], stderr)
	case "ice":
		return iceCmd(args[1:], stdout, stderr)
	case "turn":
		return turnCmd(args[1:], stdout, stderr)
	case "check":
		return checkCmd(args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "natprobe: unknown command %q\n%s", args[0], usage)
	return 1
}
