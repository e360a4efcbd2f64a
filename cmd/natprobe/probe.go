package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/medianet/medianet/natprobe"
)

// servers is a repeatable --server flag.
type servers []string

func (s *servers) String() string     { return strings.Join(*s, ",") }
func (s *servers) Set(v string) error { *s = append(*s, v); return nil }

func probeCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("natprobe probe", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var srv servers
	fs.Var(&srv, "server", "STUN server HOST:PORT (repeat for several; the first RFC 5780 one is primary)")
	netnsPath := fs.String("netns", "", "probe from inside the network namespace at `PATH`")
	container := fs.String("container", "", "probe from inside the network namespace of Docker or podman container `ID`")
	runtime := fs.String("runtime", "", "container runtime for --container: docker or podman (default: try docker, then podman)")
	localPort := fs.Uint("local-port", 0, "local UDP `port` of the basic and mapping tests (the media server's port)")
	timeout := fs.Duration("timeout", 5*time.Second, "bound on the whole probe")
	lifetime := fs.Duration("lifetime", 0, "also measure how long an idle binding lives, up to this `duration` (takes that long)")
	asJSON := fs.Bool("json", false, "print one JSON object")
	if err := fs.Parse(args); err != nil {
		return 1
	}
	if len(srv) == 0 || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "natprobe probe: give at least one --server HOST:PORT and no other arguments")
		return 1
	}
	if *netnsPath != "" && *container != "" {
		fmt.Fprintln(stderr, "natprobe probe: give --netns or --container, not both")
		return 1
	}
	if *localPort > 65535 {
		fmt.Fprintf(stderr, "natprobe probe: --local-port %d: want 0 to 65535\n", *localPort)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout+*lifetime+2*time.Second)
	defer cancel()
	p := &natprobe.Prober{LocalPort: uint16(*localPort), Timeout: *timeout, Lifetime: *lifetime}
	closeNet, err := setupProber(ctx, p, srv, *netnsPath, *container, *runtime)
	if err != nil {
		fmt.Fprintf(stderr, "natprobe probe: %v\n", err)
		return 1
	}
	defer closeNet()
	rep, err := p.Probe(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "natprobe probe: %v\n", err)
		return 1
	}
	if *asJSON {
		writeJSON(stdout, rep)
	} else {
		printReport(stdout, rep)
	}
	return natprobe.ExitCode(rep.Verdict)
}

// setupProber resolves the servers and, for --netns or --container, opens
// the prober's sockets in that namespace; the returned func releases it.
func setupProber(ctx context.Context, p *natprobe.Prober, srv []string, netnsPath, container, runtime string) (func(), error) {
	for _, s := range srv {
		ap, err := resolve(ctx, s)
		if err != nil {
			return nil, fmt.Errorf("--server %q: %w", s, err)
		}
		p.Servers = append(p.Servers, ap)
	}
	n, closeNet, err := openNetwork(ctx, netnsPath, container, runtime)
	if err != nil {
		return nil, err
	}
	p.Net = n
	return closeNet, nil
}

// openNetwork returns where sockets are opened: the host's namespace, or
// the one at --netns or of --container; the func releases it.
func openNetwork(ctx context.Context, netnsPath, container, runtime string) (natprobe.TURNNetwork, func(), error) {
	if container != "" {
		path, err := containerNetns(ctx, runtime, container)
		if err != nil {
			return nil, nil, fmt.Errorf("--container %q: %w", container, err)
		}
		netnsPath = path
	}
	if netnsPath == "" {
		return natprobe.HostNetwork{}, func() {}, nil
	}
	n, err := natprobe.NewNetnsNetwork(netnsPath)
	if err != nil {
		return nil, nil, fmt.Errorf("--netns: %w", err)
	}
	return n, func() { n.Close() }, nil
}

// resolve parses HOST:PORT, looking the host up when it is a name.
func resolve(ctx context.Context, s string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("want HOST:PORT: %w", err)
	}
	pn, err := strconv.ParseUint(port, 10, 16)
	if err != nil || pn == 0 {
		return netip.AddrPort{}, fmt.Errorf("port %q: want 1 to 65535", port)
	}
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil || len(addrs) == 0 {
		return netip.AddrPort{}, fmt.Errorf("look up %q: %w", host, err)
	}
	return netip.AddrPortFrom(addrs[0].Unmap(), uint16(pn)), nil
}

func printReport(w io.Writer, r *natprobe.Report) {
	opt := func(b *bool) string {
		if b == nil {
			return "not testable"
		}
		return strconv.FormatBool(*b)
	}
	fmt.Fprintf(w, "server        %s (RFC 5780: %v)\n", r.Server, r.RFC5780)
	fmt.Fprintf(w, "local         %s\nmapped        %s\n", r.Local, r.Mapped)
	fmt.Fprintf(w, "NAT present   %v (port preserved: %v)\n", r.NATPresent, r.PortPreserved)
	fmt.Fprintf(w, "mapping       %s\nfiltering     %s\nclassic       %s\n", r.Mapping, r.Filtering, r.Classic)
	fmt.Fprintf(w, "hairpinning   %s\n", opt(r.Hairpinning))
	fmt.Fprintf(w, "remaps when a peer's packet arrives first: %s\n", opt(r.UnsolicitedInboundRemaps))
	if r.BindingLifetimeAtLeastMs != nil || r.BindingLifetimeAtMostMs != nil {
		fmt.Fprintf(w, "binding lifetime: at least %s, at most %s\n", ms(r.BindingLifetimeAtLeastMs), ms(r.BindingLifetimeAtMostMs))
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	fmt.Fprintf(w, "took %d ms\nverdict: %s\n", r.DurationMs, r.Verdict)
	for _, a := range r.Advice {
		fmt.Fprintf(w, "advice: %s\n", a)
	}
}

func ms(v *int64) string {
	if v == nil {
		return "-"
	}
	return (time.Duration(*v) * time.Millisecond).String()
}
