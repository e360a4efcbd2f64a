package cni_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/medianet/medianet/cni"
)

// manifestDir holds the Kubernetes manifests, relative to this package.
const manifestDir = "../../deploy/kubernetes"

// embeddedConfigs returns the JSON blocks of a manifest: the literal block
// scalars under the keys "config: |" (NetworkAttachmentDefinition) and
// "<name>.conflist: |" (ConfigMap), dedented. No YAML library needed: a block
// ends at the first non-empty line indented no deeper than its key.
func embeddedConfigs(t *testing.T, path string) map[string][]byte {
	t.Helper()
	data, err := os.ReadFile(path)
	must(t, err)
	out := map[string][]byte{}
	var key string
	var keyIndent int
	var block bytes.Buffer
	flush := func() {
		if key != "" {
			out[key] = append([]byte(nil), block.Bytes()...)
		}
		key = ""
		block.Reset()
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		indent := len(line) - len(strings.TrimLeft(line, " "))
		if key != "" {
			if trimmed == "" || indent > keyIndent {
				block.WriteString(line + "\n")
				continue
			}
			flush()
		}
		if k, ok := strings.CutSuffix(trimmed, ": |"); ok && (k == "config" || strings.HasSuffix(k, ".conflist")) {
			key, keyIndent = k, indent
		}
	}
	flush()
	return out
}

// pluginConfs splits a network configuration (list or single) into the
// per-plugin configurations a runtime passes, with cniVersion and name
// copied in as libcni does.
func pluginConfs(t *testing.T, raw []byte) [][]byte {
	t.Helper()
	var top map[string]json.RawMessage
	if err := json.Unmarshal(raw, &top); err != nil {
		t.Fatalf("embedded config is not JSON: %v\n%s", err, raw)
	}
	plugins, ok := top["plugins"]
	if !ok {
		return [][]byte{raw}
	}
	var list []map[string]json.RawMessage
	if err := json.Unmarshal(plugins, &list); err != nil {
		t.Fatalf("plugins: %v", err)
	}
	var out [][]byte
	for _, p := range list {
		p["cniVersion"], p["name"] = top["cniVersion"], top["name"]
		b, _ := json.Marshal(p)
		out = append(out, b)
	}
	return out
}

// carriesCNI matches the kinds of manifest that embed CNI configurations
// (the DaemonSet's ConfigMap, Multus' NetworkAttachmentDefinitions); the
// CRDs and RBAC of ipam.kubernetes carry none.
var carriesCNI = regexp.MustCompile(`(?m)^kind: (ConfigMap|NetworkAttachmentDefinition)\s*$`)

// TestManifests runs every CNI configuration embedded in deploy/kubernetes
// through the plugins' configuration parsers: medianet's (type medianet)
// and medianet-ipam's (any plugin whose ipam.type is medianet-ipam).
func TestManifests(t *testing.T) {
	all, err := filepath.Glob(filepath.Join(manifestDir, "*.yaml"))
	must(t, err)
	var files []string
	for _, f := range all {
		b, err := os.ReadFile(f)
		must(t, err)
		if carriesCNI.Match(b) {
			files = append(files, f)
		}
	}
	if len(files) < 3 {
		t.Fatalf("found %d manifests in %s, want at least 3", len(files), manifestDir)
	}
	parsed := 0
	for _, f := range files {
		blocks := embeddedConfigs(t, f)
		for key, raw := range blocks {
			for _, pc := range pluginConfs(t, raw) {
				var head struct {
					Type string `json:"type"`
					IPAM struct {
						Type string `json:"type"`
					} `json:"ipam"`
				}
				must(t, json.Unmarshal(pc, &head))
				if head.Type == "medianet" {
					if _, err := cni.ParseMainConfig(pc); err != nil {
						t.Errorf("%s %s: medianet config: %v", filepath.Base(f), key, err)
					}
					parsed++
				}
				if head.IPAM.Type == cni.IPAMType {
					c, err := cni.ParseConfig(pc)
					if err != nil {
						t.Errorf("%s %s: medianet-ipam config: %v", filepath.Base(f), key, err)
					} else if c.Net.Type != "medianet" && c.Net.IPAM.Etcd == nil && c.IPAM.NodeRanges == nil {
						t.Errorf("%s %s: medianet-ipam behind %s with neither nodeRanges nor etcd: every node would use the whole subnet", filepath.Base(f), key, c.Net.Type)
					}
					parsed++
				}
			}
		}
		if len(blocks) == 0 {
			t.Errorf("%s: no embedded CNI configuration found", filepath.Base(f))
		}
	}
	if parsed < 5 {
		t.Errorf("parsed %d configurations, want at least 5 (2 per medianet plugin entry, 1 for the reference macvlan)", parsed)
	}
}
