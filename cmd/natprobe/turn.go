package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/medianet/medianet/natprobe"
)

// turnFlags are the flags of turn, shared with check.
type turnFlags struct {
	user, password, secret, ca string
	passwordFile, secretFile   string
	ttl                        time.Duration
	// passwordFrom and secretFrom say where the credential came from
	// (a flag, a file, the environment), for error messages.
	passwordFrom, secretFrom string
}

func (f *turnFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.user, "user", "", "TURN long-term credential `user` (with --secret: the user part of the REST username)")
	fs.StringVar(&f.password, "password", "", "TURN long-term credential `password` (visible to every local user: prefer --password-file or env "+envPassword+")")
	fs.StringVar(&f.passwordFile, "password-file", "", "read the TURN long-term password from `FILE` (one trailing newline trimmed)")
	fs.StringVar(&f.secret, "secret", "", "TURN REST API shared `secret` (coturn static-auth-secret): natprobe makes the ephemeral credentials (visible to every local user: prefer --secret-file or env "+envSecret+")")
	fs.StringVar(&f.secretFile, "secret-file", "", "read the TURN REST API shared secret from `FILE` (one trailing newline trimmed)")
	fs.DurationVar(&f.ttl, "ttl", time.Hour, "validity of the credentials made with --secret")
	fs.StringVar(&f.ca, "ca", "", "PEM `file` of certificates trusted for turns: (a self-signed server certificate or its CA)")
}

// check returns the TURN check for uri, or a usage error naming the flag.
// credentials must have been resolved.
func (f *turnFlags) check(ctx context.Context, uri string, timeout time.Duration) (*natprobe.TURNCheck, error) {
	srv, err := natprobe.ParseTURNURI(uri)
	if err != nil {
		return nil, err
	}
	ap, err := resolve(ctx, fmt.Sprintf("%s:%d", bracket(srv.Host), srv.Port))
	if err != nil {
		return nil, fmt.Errorf("%q: %w", uri, err)
	}
	return &natprobe.TURNCheck{Server: srv, Addr: ap, User: f.user, Password: f.password, Secret: f.secret,
		PasswordFrom: f.passwordFrom, SecretFrom: f.secretFrom, TTL: f.ttl, CAFile: f.ca, Timeout: timeout}, nil
}

func bracket(host string) string {
	for _, c := range host {
		if c == ':' {
			return "[" + host + "]"
		}
	}
	return host
}

func turnCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("natprobe turn", flag.ContinueOnError)
	fs.SetOutput(stderr)
	server := fs.String("server", "", "TURN server `URI`: turn:HOST:PORT[?transport=udp|tcp] or turns:HOST:PORT")
	var tf turnFlags
	tf.register(fs)
	netnsPath := fs.String("netns", "", "check from inside the network namespace at `PATH`")
	container := fs.String("container", "", "check from inside the network namespace of Docker or podman container `ID`")
	runtime := fs.String("runtime", "", "container runtime for --container: docker or podman (default: try docker, then podman)")
	timeout := fs.Duration("timeout", 5*time.Second, "bound on each stage (connect, allocate, permission, relay)")
	asJSON := fs.Bool("json", false, "print one JSON object")
	if err := fs.Parse(args); err != nil {
		return 1
	}
	if *server == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "natprobe turn: give --server turn:HOST:PORT[?transport=udp|tcp] or turns:HOST:PORT, and no other arguments")
		return 1
	}
	if *netnsPath != "" && *container != "" {
		fmt.Fprintln(stderr, "natprobe turn: give --netns or --container, not both")
		return 1
	}
	if err := tf.credentials(os.Getenv); err != nil {
		fmt.Fprintf(stderr, "natprobe turn: %v\n", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5**timeout)
	defer cancel()
	c, err := tf.check(ctx, *server, *timeout)
	if err != nil {
		fmt.Fprintf(stderr, "natprobe turn: --server: %v\n", err)
		return 1
	}
	n, closeNet, err := openNetwork(ctx, *netnsPath, *container, *runtime)
	if err != nil {
		fmt.Fprintf(stderr, "natprobe turn: %v\n", err)
		return 1
	}
	defer closeNet()
	c.Net = n
	rep, err := c.Run()
	if err != nil {
		fmt.Fprintf(stderr, "natprobe turn: %v\n", err)
		return 1
	}
	if *asJSON {
		writeJSON(stdout, rep)
	} else {
		printTURN(stdout, rep)
	}
	return natprobe.TURNExitCode(rep.Verdict)
}

// writeJSON prints v as one indented JSON object.
func writeJSON(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

func printTURN(w io.Writer, r *natprobe.TURNReport) {
	fmt.Fprintf(w, "server        %s (%s)\n", r.Server, r.Transport)
	if r.Local != "" {
		fmt.Fprintf(w, "local         %s\n", r.Local)
	}
	if r.Mapped != "" {
		fmt.Fprintf(w, "mapped        %s\n", r.Mapped)
	}
	if r.Relayed != "" {
		fmt.Fprintf(w, "relayed       %s (%s), lifetime %d s\n", r.Relayed, r.RelayedTransport, r.LifetimeSeconds)
		fmt.Fprintf(w, "allocation    %.1f ms, permission %.1f ms\n", r.AllocationMs, r.PermissionMs)
	}
	if r.RelayRTTMs > 0 {
		fmt.Fprintf(w, "relay RTT     %.1f ms (median of round trips peer -> relay -> here -> relay -> peer)\n", r.RelayRTTMs)
	}
	fmt.Fprintf(w, "took %d ms\n", r.DurationMs)
	if r.Stage != "" {
		fmt.Fprintf(w, "verdict: %s (at %s)\nerror: %s\n", r.Verdict, r.Stage, r.Error)
	} else {
		fmt.Fprintf(w, "verdict: %s\n", r.Verdict)
	}
	for _, a := range r.Advice {
		fmt.Fprintf(w, "advice: %s\n", a)
	}
}
