package docs_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/medianet/medianet/cni"
	"github.com/medianet/medianet/natprobe"
)

// The tests of this file keep docs/design.md, the contract, true in both
// directions: what the code has is listed there, and what is listed there
// is what the code has.

func designDoc(t *testing.T, root string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "docs", "design.md"))
	if err != nil {
		t.Fatalf("the contract: %v", err)
	}
	return string(b)
}

// section returns the text under the heading whose title is title, up to
// the next heading of the same or a higher level.
func section(t *testing.T, doc, title string) string {
	t.Helper()
	lines := strings.Split(doc, "\n")
	for i, l := range lines {
		level := len(l) - len(strings.TrimLeft(l, "#"))
		if level == 0 || strings.TrimSpace(l[level:]) != title {
			continue
		}
		var out []string
		for _, m := range lines[i+1:] {
			if n := len(m) - len(strings.TrimLeft(m, "#")); n > 0 && n <= level && strings.HasPrefix(m[n:], " ") {
				break
			}
			out = append(out, m)
		}
		return strings.Join(out, "\n")
	}
	t.Fatalf("docs/design.md has no heading %q", title)
	return ""
}

var backticked = regexp.MustCompile("`([^`]+)`")

// firstColumn returns the backticked names in the first cell of each
// table row of text (the header row has none).
func firstColumn(text string) []string {
	var names []string
	for _, l := range strings.Split(text, "\n") {
		cells := strings.Split(l, "|")
		if !strings.HasPrefix(strings.TrimSpace(l), "|") || len(cells) < 3 {
			continue
		}
		for _, m := range backticked.FindAllStringSubmatch(cells[1], -1) {
			names = append(names, m[1])
		}
	}
	return names
}

// compareSets reports names of code missing from the doc, and the other way.
func compareSets(t *testing.T, what string, code, doc []string) {
	t.Helper()
	slices.Sort(code)
	slices.Sort(doc)
	code, doc = slices.Compact(code), slices.Compact(doc)
	for _, c := range code {
		if !slices.Contains(doc, c) {
			t.Errorf("%s %q is in the code but not in docs/design.md: add its row", what, c)
		}
	}
	for _, d := range doc {
		if !slices.Contains(code, d) {
			t.Errorf("docs/design.md lists %s %q, which the code does not have", what, d)
		}
	}
	if len(code) == 0 {
		t.Errorf("found no %s in the code: the extraction is broken", what)
	}
}

// jsonKeys returns the JSON names of v's struct fields, with prefix.
func jsonKeys(v any, prefix string) []string {
	var keys []string
	typ := reflect.TypeOf(v)
	for i := range typ.NumField() {
		name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			keys = append(keys, prefix+name)
		}
	}
	return keys
}

// TestDesignTables: the CNI configuration keys the plugins read, and
// natprobe's JSON fields, are exactly those of docs/design.md's tables.
func TestDesignTables(t *testing.T) {
	doc := designDoc(t, repoRoot(t))
	for _, tc := range []struct {
		title, what string
		code        []string
	}{
		{"Keys of the `medianet` plugin", "configuration key", jsonKeys(cni.NetConf{}, "")},
		{"Keys of `ipam` (type `medianet-ipam`)", "configuration key", jsonKeys(cni.IPAMConf{}, "ipam.")},
		{"Keys of `ipam.etcd`", "configuration key", jsonKeys(cni.EtcdConf{}, "ipam.etcd.")},
		{"Keys of `ipam.kubernetes`", "configuration key", jsonKeys(cni.KubernetesConf{}, "ipam.kubernetes.")},
		{"Keys of `ipam.dhcp`", "configuration key", jsonKeys(cni.DHCPConf{}, "ipam.dhcp.")},
		{"`probe --json` fields", "JSON field", jsonKeys(natprobe.Report{}, "")},
		{"`ice --json` fields", "JSON field", jsonKeys(natprobe.Prediction{}, "")},
		{"`turn --json` fields", "JSON field", jsonKeys(natprobe.TURNReport{}, "")},
		{"`check --json` fields", "JSON field", jsonKeys(natprobe.CheckReport{}, "")},
	} {
		t.Run(tc.title, func(t *testing.T) {
			compareSets(t, tc.what, tc.code, firstColumn(section(t, doc, tc.title)))
		})
	}
}

// TestDesignExitCodes: natprobe's exit codes, as its usage states them,
// are those of docs/design.md's table.
func TestDesignExitCodes(t *testing.T) {
	root := repoRoot(t)
	out, _ := exec.Command(filepath.Join(binDir(t, root), "natprobe"), "-h").CombinedOutput()
	line := regexp.MustCompile(`exit codes: (.*)`).FindSubmatch(out)
	if line == nil {
		t.Fatalf("natprobe -h states no exit codes:\n%s", out)
	}
	code := regexp.MustCompile(`\d+`).FindAllString(string(line[1]), -1)
	compareSets(t, "natprobe exit code", code, firstColumn(section(t, designDoc(t, root), "Exit codes")))
}

// TestDesignMakeTargets: the Makefile's targets are those of the table.
func TestDesignMakeTargets(t *testing.T) {
	root := repoRoot(t)
	mk, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	var code []string
	for _, m := range regexp.MustCompile(`(?m)^\.PHONY:(.*)$`).FindAllSubmatch(mk, -1) {
		code = append(code, strings.Fields(string(m[1]))...)
	}
	compareSets(t, "make target", code, firstColumn(section(t, designDoc(t, root), "Make targets")))
}

// TestDesignBinaries: the binaries under cmd/ are those of the table.
func TestDesignBinaries(t *testing.T) {
	root := repoRoot(t)
	dirs, err := os.ReadDir(filepath.Join(root, "cmd"))
	if err != nil {
		t.Fatal(err)
	}
	var code []string
	for _, d := range dirs {
		if d.IsDir() {
			code = append(code, d.Name())
		}
	}
	compareSets(t, "binary", code, firstColumn(section(t, designDoc(t, root), "Binaries")))
}
