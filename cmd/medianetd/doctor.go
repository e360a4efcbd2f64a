package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/medianet/medianet/cni"
	"github.com/medianet/medianet/doctor"
	"github.com/medianet/medianet/metrics"
)

// runDoctors is the node agent's doctor: at start and every interval it
// checks the link of each medianet network in the CNI conf dirs whose
// store is dataDir, and keeps the report in <dataDir>/doctor/<link>.json,
// where CNI STATUS reads it (cni/statusdoctor.go). A record is valid for
// two intervals and a minute: when the agent stops, STATUS stops
// believing it.
// Each verdict also goes to onVerdict (the medianet_parent_state gauge).
func runDoctors(ctx context.Context, dirs []string, dataDir string, interval time.Duration, onVerdict func(link string, v doctor.Verdict), log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	last := map[string]doctor.Verdict{}
	for {
		for _, c := range doctorChecks(dirs, dataDir) {
			checkOne(ctx, c, interval, last, onVerdict, log)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func checkOne(ctx context.Context, c cni.DoctorCheck, interval time.Duration, last map[string]doctor.Verdict, onVerdict func(string, doctor.Verdict), log *slog.Logger) {
	r, err := doctor.Run(ctx, doctor.Options{Parent: c.Parent, VLAN: c.VLAN, Gateways: c.Gateways})
	if err != nil {
		if ctx.Err() == nil {
			log.Warn("doctor: cannot check", "link", c.Link(), "err", err)
		}
		return
	}
	onVerdict(r.Link, r.Verdict)
	now := time.Now()
	if err := doctor.WriteRecord(c.DataDir, doctor.Record{Report: r, Checked: now, ValidUntil: now.Add(2*interval + time.Minute)}); err != nil {
		log.Warn("doctor: keep the report", "link", r.Link, "err", err)
	}
	switch {
	case r.Verdict == last[r.Link]:
	case r.Verdict == doctor.Pass:
		log.Info("doctor: frames pass", "link", r.Link, "ms", r.DurationMs)
	default:
		log.Error("doctor: "+r.Reason, "link", r.Link, "verdict", r.Verdict, "advice", r.Advice)
	}
	last[r.Link] = r.Verdict
}

// doctorChecks reads the medianet networks of the conf dirs (libcni's
// file kinds) and returns one check per link whose store is dataDir.
func doctorChecks(dirs []string, dataDir string) []cni.DoctorCheck {
	var out []cni.DoctorCheck
	seen := map[string]bool{}
	for _, d := range dirs {
		var files []string
		for _, pat := range []string{"*.conf", "*.conflist", "*.json"} {
			m, _ := filepath.Glob(filepath.Join(d, pat))
			files = append(files, m...)
		}
		sort.Strings(files) // libcni's order: by name, whatever the kind
		for _, f := range files {
			for _, c := range mainConfs(f) {
				dc, err := c.DoctorCheck()
				if err != nil || seen[dc.Link()] || filepath.Clean(dc.DataDir) != filepath.Clean(dataDir) {
					continue
				}
				seen[dc.Link()] = true
				out = append(out, dc)
			}
		}
	}
	return out
}

// mainConfs returns the configurations of the main plugin (type
// "medianet") in a .conf or .conflist file.
func mainConfs(file string) []*cni.MainConfig {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil
	}
	var list struct {
		Name       string           `json:"name"`
		CNIVersion string           `json:"cniVersion"`
		Plugins    []map[string]any `json:"plugins"`
	}
	var single map[string]any
	if json.Unmarshal(data, &list) != nil || json.Unmarshal(data, &single) != nil {
		return nil
	}
	entries := list.Plugins
	if entries == nil {
		entries = []map[string]any{single}
	} else {
		for _, e := range entries { // as libcni passes a list's entries
			e["name"], e["cniVersion"] = list.Name, list.CNIVersion
		}
	}
	var out []*cni.MainConfig
	for _, e := range entries {
		if e["type"] != "medianet" {
			continue
		}
		b, err := json.Marshal(e)
		if err != nil {
			continue
		}
		if c, err := cni.ParseMainConfig(b); err == nil {
			out = append(out, c)
		}
	}
	return out
}

// verdicts are the states of the medianet_parent_state gauge.
var verdicts = []doctor.Verdict{doctor.Pass, doctor.Dropped, doctor.ParentMissing, doctor.ParentDown,
	doctor.NoCarrier, doctor.NoAnswer, doctor.MTUMismatch}

// parentStateOf returns the doctor's verdict sink of agent's
// medianet_parent_state gauge (a no-op without metrics).
func parentStateOf(agent *metrics.Agent) func(string, doctor.Verdict) {
	if agent == nil {
		return func(string, doctor.Verdict) {}
	}
	states := make([]string, len(verdicts))
	for i, v := range verdicts {
		states[i] = string(v)
	}
	return func(link string, v doctor.Verdict) { agent.Recorder().SetParentState(link, string(v), states) }
}
