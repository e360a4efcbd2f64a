package docs_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// flagBinary says where a binary's flags are documented and how to make
// it print them.
type flagBinary struct {
	// section is the heading of its part of docs/design.md, whose tables
	// headed "flag" (or "command and flag") list every flag; "" for a
	// binary that must have no flags (the CNI plugins: their input is the
	// network configuration).
	section string
	// subs finds its subcommands in its own -h output; nil when it has
	// none.
	subs *regexp.Regexp
	// help returns the arguments that make it print the flag defaults of
	// subcommand sub ("": the binary's own flags).
	help func(sub, tmp string) []string
}

var flagBinaries = map[string]flagBinary{
	"medianet":           {help: own},
	"medianet-ipam":      {help: own},
	"medianet-ipam-etcd": {help: own},
	"medianet-ipam-kube": {help: own},
	"medianetd":          {section: "medianetd", help: own},
	"natprobe": {section: "natprobe", subs: regexp.MustCompile(`(?m)^\s+natprobe ([a-z]+)`),
		help: func(sub, _ string) []string { return []string{sub, "-h"} }},
	"medianetctl": {section: "medianetctl", subs: regexp.MustCompile(`(?m)\bipam ([a-z]+)|\bmedianetctl (doctor)\b`),
		help: func(sub, tmp string) []string {
			switch sub {
			case "":
				return []string{"-h"}
			case "doctor": // a command of its own, not of ipam
				return []string{sub, "-h"}
			}
			return []string{"--data-dir", tmp, "ipam", sub, "-h"}
		}},
	"medianet-engine-proxy": {section: "medianet-engine-proxy", help: own},
}

func own(sub, _ string) []string { return []string{"-h"} }

var (
	// defaultsFlag is a flag in Go's flag defaults ("  -name type").
	defaultsFlag = regexp.MustCompile(`(?m)^  -([a-z][a-z0-9.-]*[a-z0-9])(?:\s|$)`)
	// flagName is a documented flag: --name (names may hold dots, as
	// --web.config.file does).
	flagName = regexp.MustCompile(`^--([a-z][a-z0-9.-]*[a-z0-9])`)
	subName  = regexp.MustCompile(`^[a-z][a-z-]*$`)
)

// codeFlags runs the binary's help for itself and each subcommand and
// returns the flags of each ("" for the binary's own).
func codeFlags(t *testing.T, path string, b flagBinary) map[string][]string {
	t.Helper()
	tmp := t.TempDir()
	run := func(args []string) string {
		cmd := exec.Command(path, args...)
		cmd.Dir = tmp
		out, _ := cmd.CombinedOutput() // -h exits non-zero
		return string(out)
	}
	top := run(b.help("", tmp))
	if strings.TrimSpace(top) == "" {
		t.Fatalf("%s %v printed nothing", path, b.help("", tmp))
	}
	subs := []string{""}
	if b.subs != nil {
		for _, m := range b.subs.FindAllStringSubmatch(top, -1) {
			for _, g := range m[1:] { // the alternative that matched
				if g != "" {
					subs = append(subs, g)
				}
			}
		}
		subs = slices.Compact(subs)
		if len(subs) < 2 {
			t.Fatalf("%s -h names no subcommand:\n%s", path, top)
		}
	}
	flags := map[string][]string{}
	for _, sub := range subs {
		out := top
		if sub != "" {
			out = run(b.help(sub, tmp))
			if !strings.Contains(out, "Usage of ") {
				t.Errorf("%s %v does not print its flags (no \"Usage of\"):\n%s", path, b.help(sub, tmp), out)
			}
		}
		flags[sub] = []string{}
		for _, m := range defaultsFlag.FindAllStringSubmatch(out, -1) {
			flags[sub] = append(flags[sub], m[1])
		}
	}
	return flags
}

// docFlags reads the first column of the flag tables of text. A cell
// lists backticked items, each "[SUB] [--flag ...]": an item without a
// subcommand continues the one before it in the cell (the binary's own
// flags when none). A subcommand named without flags is listed too.
func docFlags(text string) map[string][]string {
	flags := map[string][]string{}
	lines := strings.Split(text, "\n")
	inFlagTable := false
	for i, l := range lines {
		cells := strings.Split(l, "|")
		if !strings.HasPrefix(strings.TrimSpace(l), "|") || len(cells) < 3 {
			inFlagTable = false
			continue
		}
		if i+1 < len(lines) && strings.HasPrefix(strings.TrimSpace(lines[i+1]), "|---") {
			inFlagTable = strings.Contains(cells[1], "flag") // a header row
			continue
		}
		if !inFlagTable || strings.HasPrefix(strings.TrimSpace(l), "|---") {
			continue
		}
		cur := ""
		for _, m := range backticked.FindAllStringSubmatch(cells[1], -1) {
			tokens := strings.Fields(strings.NewReplacer("[", " ", "]", " ", "(", " ", ")", " ").Replace(m[1]))
			for j, tok := range tokens {
				switch {
				case j == 0 && subName.MatchString(tok):
					cur = tok
					if flags[cur] == nil {
						flags[cur] = []string{}
					}
				case flagName.MatchString(tok):
					flags[cur] = append(flags[cur], flagName.FindStringSubmatch(tok)[1])
				}
			}
		}
	}
	return flags
}

// TestDesignFlags: for every binary in cmd/, and every subcommand of it,
// the flags its help prints are exactly the flags of docs/design.md's
// flag tables, row by row.
func TestDesignFlags(t *testing.T) {
	root := repoRoot(t)
	bin := binDir(t, root)
	doc := designDoc(t, root)
	dirs, err := os.ReadDir(filepath.Join(root, "cmd"))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		if !d.IsDir() {
			continue
		}
		name := d.Name()
		t.Run(name, func(t *testing.T) {
			b, ok := flagBinaries[name]
			if !ok {
				t.Fatalf("cmd/%s: say in flagBinaries (test/docs/flags_test.go) where its flags are documented", name)
			}
			code := codeFlags(t, filepath.Join(bin, name), b)
			if b.section == "" {
				for sub, fl := range code {
					if len(fl) > 0 {
						t.Errorf("%s %s has flags %v but docs/design.md has no flag table for it: add one and name its section in flagBinaries", name, sub, fl)
					}
				}
				return
			}
			compareFlags(t, name, code, docFlags(section(t, doc, b.section)))
		})
	}
}

// compareFlags reports, subcommand by subcommand, flags the binary has
// that the table lacks and the other way.
func compareFlags(t *testing.T, prog string, code, doc map[string][]string) {
	t.Helper()
	what := func(sub string) string {
		if sub == "" {
			return prog
		}
		return prog + " " + sub
	}
	for sub, fl := range code {
		dfl, documented := doc[sub]
		if !documented && (sub != "" || len(fl) > 0) {
			t.Errorf("%s is not in docs/design.md's flag table: add its rows (`%s --flag`)", what(sub), sub)
			continue
		}
		for _, f := range fl {
			if !slices.Contains(dfl, f) {
				t.Errorf("%s --%s is in its help but not in docs/design.md's flag table: add its row", what(sub), f)
			}
		}
		for _, f := range dfl {
			if !slices.Contains(fl, f) {
				t.Errorf("docs/design.md's flag table lists %s --%s, which its help does not have", what(sub), f)
			}
		}
	}
	for sub := range doc {
		if _, ok := code[sub]; !ok {
			t.Errorf("docs/design.md's flag table lists %s, which the binary does not have", what(sub))
		}
	}
}
