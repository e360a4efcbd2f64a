package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/medianet/medianet/natprobe"
)

func serveCmd(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("natprobe serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	primary := fs.String("primary", "", "first `IP:PORT` (required)")
	alternate := fs.String("alternate", "", "second `IP:PORT`, both IP and port different from primary (omit for a single-address RFC 5780 section 6 server)")
	jsonLog := fs.Bool("json-log", false, "log one JSON object per line")
	rate := fs.Float64("rate", 50, "requests per second allowed per source IP")
	burst := fs.Int("burst", 100, "requests a source IP may send at once")
	if err := fs.Parse(args); err != nil {
		return 1
	}
	cfg := natprobe.ServerConfig{Rate: *rate, Burst: *burst}
	var err error
	if cfg.Primary, err = netip.ParseAddrPort(*primary); err != nil {
		fmt.Fprintf(stderr, "natprobe serve: --primary %q: want IP:PORT: %v\n", *primary, err)
		return 1
	}
	if *alternate != "" {
		if cfg.Alternate, err = netip.ParseAddrPort(*alternate); err != nil {
			fmt.Fprintf(stderr, "natprobe serve: --alternate %q: want IP:PORT: %v\n", *alternate, err)
			return 1
		}
	}
	var mu sync.Mutex
	logf := func(level, msg string) {
		mu.Lock()
		defer mu.Unlock()
		if *jsonLog {
			json.NewEncoder(stderr).Encode(map[string]string{"time": time.Now().UTC().Format(time.RFC3339Nano), "level": level, "msg": msg})
			return
		}
		fmt.Fprintln(stderr, msg)
	}
	cfg.Logf = func(format string, args ...any) { logf("debug", fmt.Sprintf(format, args...)) }
	s, err := natprobe.NewServer(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "natprobe serve: %v\n", err)
		return 1
	}
	if err := s.Start(); err != nil {
		fmt.Fprintf(stderr, "natprobe serve: %v\n", err)
		return 1
	}
	logf("info", fmt.Sprintf("natprobe: serving on %v", s.Addrs()))
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	s.Close()
	return 0
}
