package containerdtest

import (
	"encoding/json"
	"os"
	"path/filepath"
)

// RefPlugins is where Debian's containernetworking-plugins live; the CRI
// plugin runs their loopback for every pod, as on any node.
const RefPlugins = "/usr/lib/cni"

// InstallPlugins copies the plugin binaries at paths into BinDir under
// their base names (through a temporary name and a rename, as an
// installer does). A name without a slash is taken from RefPlugins.
func (c *Containerd) InstallPlugins(paths ...string) {
	c.t.Helper()
	for _, p := range paths {
		if filepath.Base(p) == p {
			p = filepath.Join(RefPlugins, p)
		}
		dst := filepath.Join(c.BinDir, filepath.Base(p))
		data, err := os.ReadFile(p)
		if err == nil {
			err = os.WriteFile(dst+".new", data, 0o755)
		}
		if err == nil {
			err = os.Rename(dst+".new", dst)
		}
		if err != nil {
			c.t.Fatalf("containerdtest: install plugin %s: %v", p, err)
		}
	}
}

// WriteConflist writes conflist (JSON) into ConfDir as file, atomically;
// CRI reloads conf_dir when it changes (see WaitNetwork).
func (c *Containerd) WriteConflist(file string, conflist []byte) {
	c.t.Helper()
	if !json.Valid(conflist) {
		c.t.Fatalf("containerdtest: conflist %s is not valid JSON: %s", file, conflist)
	}
	path := filepath.Join(c.ConfDir, file)
	if err := os.WriteFile(path+".tmp", conflist, 0o644); err != nil {
		c.t.Fatalf("containerdtest: %v", err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		c.t.Fatalf("containerdtest: %v", err)
	}
}
