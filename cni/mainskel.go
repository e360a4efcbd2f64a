package cni

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/medianet/medianet/metrics/report"
)

// Funcs returns the main plugin's verbs for skel.PluginMainFuncs: each
// parses the configuration, runs the verb, prints the result (converted to
// the configuration's cniVersion) and maps errors with MainError or
// MainStatusError. Each call is logged to logFile (or env
// MEDIANET_LOG_FILE); without one, only failures go to stderr. Nothing but
// the result or error is ever written to stdout.
func (m *Main) Funcs() skel.CNIFuncs {
	ctx := context.Background()
	return skel.CNIFuncs{
		Add: func(args *skel.CmdArgs) error {
			return m.run("ADD", args, func(c *MainConfig) (types.Result, error) { return m.Add(ctx, args, c) })
		},
		Del: func(args *skel.CmdArgs) error {
			return m.run("DEL", args, func(c *MainConfig) (types.Result, error) { return nil, m.Del(ctx, args, c) })
		},
		Check: func(args *skel.CmdArgs) error {
			return m.run("CHECK", args, func(c *MainConfig) (types.Result, error) { return nil, m.Check(ctx, args, c) })
		},
		GC: func(args *skel.CmdArgs) error {
			return m.run("GC", args, func(c *MainConfig) (types.Result, error) { return nil, m.GC(ctx, args, c) })
		},
		Status: func(args *skel.CmdArgs) error {
			return m.run("STATUS", args, func(c *MainConfig) (types.Result, error) { return nil, m.Status(ctx, args, c) })
		},
	}
}

// run parses the configuration, runs fn, logs the outcome, then prints
// fn's result (converted to the configuration's cniVersion) or maps the
// error to a CNI error. The log comes first: a runtime that died during
// the call leaves a closed stdout, and writing the result then ends the
// process (SIGPIPE).
func (m *Main) run(verb string, args *skel.CmdArgs, fn func(*MainConfig) (types.Result, error)) error {
	start := time.Now()
	c, err := ParseMainConfig(args.StdinData)
	logFile := m.IPAM.Env.getenv("MEDIANET_LOG_FILE")
	var res types.Result
	if err == nil {
		if c.Net.LogFile != "" {
			logFile = c.Net.LogFile
		}
		res, err = fn(c)
	}
	var cniErr *types.Error
	if err != nil {
		cniErr = MainError(err)
		if verb == "STATUS" {
			cniErr = MainStatusError(err)
		}
	}
	logOutcome(logFile, verb, args, time.Since(start), cniErr)
	network, dataDir := "", ""
	if c != nil {
		network, dataDir = c.Net.Name, c.Net.IPAM.DataDir
	}
	sendReport(report.PluginMain, verb, network, dataDir, start, m.IPAM.Stats(), cniErr)
	if cniErr != nil {
		return withCode(cniErr)
	}
	if res != nil {
		return types.PrintResult(res, c.Net.CNIVersion)
	}
	return nil
}

// logOutcome writes one line per call to logFile, or a failure to stderr
// when there is no log file (or it cannot be opened).
func logOutcome(logFile, verb string, args *skel.CmdArgs, d time.Duration, cniErr *types.Error) {
	var w io.Writer
	if logFile != "" {
		f, err := os.OpenFile(logFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err == nil {
			defer f.Close()
			w = f
		} else {
			fmt.Fprintf(os.Stderr, "medianet: log file %s: %v\n", logFile, err)
		}
	}
	if w == nil {
		if cniErr == nil {
			return
		}
		w = os.Stderr
	}
	l := log.New(w, "medianet: ", log.LstdFlags|log.Lmicroseconds)
	outcome := "ok"
	if cniErr != nil {
		outcome = fmt.Sprintf("error %d: %s", cniErr.Code, cniErr.Msg)
	}
	l.Printf("%s container=%s netns=%s ifname=%s took=%s %s", verb, args.ContainerID, args.Netns, args.IfName, d.Round(time.Microsecond), outcome)
}
