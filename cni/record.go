package cni

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// RecordDir is the directory of the data directory where the plugin
// records the ipam configuration of each cluster network it served (one
// whose blocks are claimed in etcd or in the Kubernetes API: Plugin.source
// records it before it opens the source), one file per network
// (<name>.json, the name path-escaped), so that the node agent syncs every
// cluster network with state in the store, also one no CNI
// configuration file names (a Multus NetworkAttachmentDefinition) and
// one whose runtime never sends GC (containerd 1.6, 1.7).
//
// A record holds the network's ipam object as the plugin read it, with
// the node resolved and the data directory made absolute; never the
// runtime's per-call keys (a kubeconfig is named by its path, never
// copied). The etcd password is in it when the
// configuration has it inline (ipam.etcd.password): records are mode 0600
// in the data directory (0700), as readable as the store itself; prefer
// ipam.etcd.passwordFile, whose path alone is recorded.
const RecordDir = "networks"

// record is the content of a record file.
type record struct {
	CNIVersion string   `json:"cniVersion,omitempty"`
	Name       string   `json:"name"`
	Type       string   `json:"type"`
	IPAM       IPAMConf `json:"ipam"`
}

// recordPath returns the record file of network in dataDir.
func recordPath(dataDir, network string) string {
	return filepath.Join(dataDir, RecordDir, url.PathEscape(network)+".json")
}

// Record writes c's record when it differs from the one on disk: an
// unchanged verb costs a read and a compare. The write is atomic (a
// temporary file renamed over the record), mode 0600. It makes no network
// call and takes no store lock.
func Record(c *Config) error {
	r := record{CNIVersion: c.Net.CNIVersion, Name: c.Net.Name, Type: IPAMType, IPAM: c.Net.IPAM}
	r.IPAM.Node = c.IPAM.Node
	dir, err := filepath.Abs(c.DataDir)
	if err != nil {
		return fmt.Errorf("record network %q: %w", c.Net.Name, err)
	}
	r.IPAM.DataDir = dir
	want, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("record network %q: %w", c.Net.Name, err)
	}
	path := recordPath(dir, c.Net.Name)
	if have, err := os.ReadFile(path); err == nil && bytes.Equal(have, want) {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("record network %q: %w", c.Net.Name, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".record-*")
	if err != nil {
		return fmt.Errorf("record network %q: %w", c.Net.Name, err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename, nothing
	if _, err := tmp.Write(want); err != nil {
		tmp.Close()
		return fmt.Errorf("record network %q: %w", c.Net.Name, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("record network %q: %w", c.Net.Name, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("record network %q: %w", c.Net.Name, err)
	}
	return nil
}

// Recorded returns the configurations recorded in dataDir, parsed as the
// plugin parses them (ParseConfig); files that do not parse are
// skipped and named in the error. A missing directory is none.
func Recorded(dataDir string) ([]*Config, error) {
	es, err := os.ReadDir(filepath.Join(dataDir, RecordDir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("recorded networks: %w", err)
	}
	var out []*Config
	var errs []error
	for _, e := range es {
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") || filepath.Ext(e.Name()) != ".json" {
			continue
		}
		path := filepath.Join(dataDir, RecordDir, e.Name())
		b, err := os.ReadFile(path)
		if err == nil {
			var c *Config
			if c, err = ParseConfig(b); err == nil {
				out = append(out, c)
				continue
			}
		}
		errs = append(errs, fmt.Errorf("recorded network %s: %w", path, err))
	}
	return out, errors.Join(errs...)
}
