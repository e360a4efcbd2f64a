// Package docs_test keeps README.md and docs/ honest: every command of
// medianet's own binaries shown in them uses flags the binary has, every
// make target shown exists, and the blocks marked "sh runnable" run.
package docs_test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// block is one fenced code block of a Markdown file.
type block struct {
	file, info string
	line       int
	text       string
}

func repoRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Skipf("not in a git checkout: %v", err)
	}
	return strings.TrimSpace(string(out))
}

func blocks(t *testing.T, root string) []block {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	files = append(files, filepath.Join(root, "README.md"))
	var out []block
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		var cur *block
		for n := 1; sc.Scan(); n++ {
			line := sc.Text()
			trimmed := strings.TrimSpace(line)
			switch {
			case cur == nil && strings.HasPrefix(trimmed, "```"):
				cur = &block{file: filepath.Base(f), info: strings.TrimPrefix(trimmed, "```"), line: n}
			case cur != nil && trimmed == "```":
				out = append(out, *cur)
				cur = nil
			case cur != nil:
				cur.text += trimmed + "\n"
			}
		}
		fh.Close()
	}
	if len(out) == 0 {
		t.Fatal("no code blocks found in README.md and docs/")
	}
	return out
}

// commands joins continuation lines, drops comments, and splits
// pipelines and lists into single commands.
func commands(text string) []string {
	text = strings.ReplaceAll(text, "\\\n", " ")
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if i := strings.Index(l, " #"); i >= 0 {
			l = l[:i]
		}
		for _, part := range regexp.MustCompile(`&&|\|\||[|;]`).Split(l, -1) {
			if part = strings.TrimSpace(part); part != "" && !strings.HasPrefix(part, "#") {
				out = append(out, part)
			}
		}
	}
	return out
}

var ours = map[string]bool{"medianet": true, "medianet-ipam": true, "medianetctl": true, "medianetd": true, "natprobe": true}

// program returns the command's program (after env assignments and sudo)
// and its arguments.
func program(cmd string) (string, []string) {
	f := strings.Fields(cmd)
	for len(f) > 0 && (f[0] == "sudo" || regexp.MustCompile(`^[A-Z_]+=`).MatchString(f[0])) {
		f = f[1:]
	}
	if len(f) == 0 {
		return "", nil
	}
	return filepath.Base(f[0]), f[1:]
}

var flagRE = regexp.MustCompile(`(?:^|[\s\[|])(--?[a-z][a-z0-9-]*)`)

// TestDocumentedFlagsExist checks every flag of medianet's own binaries
// shown in the docs against the binary's help output, and every make
// target shown against the Makefile.
func TestDocumentedFlagsExist(t *testing.T) {
	root := repoRoot(t)
	bin := binDir(t, root)
	help := map[string]string{}
	checked := 0
	for _, b := range blocks(t, root) {
		for _, c := range commands(b.text) {
			prog, args := program(c)
			switch {
			case prog == "make" && len(args) > 0:
				target := args[0]
				if out, err := exec.Command("make", "-C", root, "-n", target).CombinedOutput(); err != nil {
					t.Errorf("%s:%d: `make %s`: no such target: %s", b.file, b.line, target, out)
				}
				checked++
			case ours[prog]:
				if _, ok := help[prog]; !ok {
					help[prog] = helpText(t, filepath.Join(bin, prog))
				}
				for _, m := range flagRE.FindAllStringSubmatch(" "+strings.Join(args, " "), -1) {
					name := strings.TrimLeft(m[1], "-")
					if !regexp.MustCompile(`(^|[\s\[(])--?` + regexp.QuoteMeta(name) + `\b`).MatchString(help[prog]) {
						t.Errorf("%s:%d: %s has no flag --%s (shown in: %s)", b.file, b.line, prog, name, c)
					}
				}
				checked++
			}
		}
	}
	if checked < 10 {
		t.Errorf("checked only %d commands in the docs; the extraction is broken", checked)
	}
}

// helpText collects a binary's usage text, with each subcommand's.
func helpText(t *testing.T, path string) string {
	t.Helper()
	var all strings.Builder
	for _, args := range [][]string{{"-h"}, {"probe", "-h"}, {"serve", "-h"}, {"ice", "-h"}, {"turn", "-h"}, {"check", "-h"},
		{"ipam", "list", "-h"}, {"ipam", "release", "-h"}, {"ipam", "gc", "-h"}, {"ipam", "reclaim", "-h"}} {
		out, _ := exec.Command(path, args...).CombinedOutput() // -h exits non-zero
		all.Write(out)
	}
	if all.Len() == 0 {
		t.Fatalf("%s printed no usage", path)
	}
	return all.String()
}

func binDir(t *testing.T, root string) string {
	t.Helper()
	if d := os.Getenv("MEDIANET_BIN"); d != "" {
		return d
	}
	if out, err := exec.Command("make", "-C", root, "build").CombinedOutput(); err != nil {
		t.Fatalf("make build: %v\n%s", err, out)
	}
	return filepath.Join(root, "bin")
}

// TestRunnableBlocks runs, file by file and in order, the blocks marked
// "sh runnable" from the repository root with bin/ built, and fails when
// one exits non-zero. They use only temporary directories.
func TestRunnableBlocks(t *testing.T) {
	root := repoRoot(t)
	bin := binDir(t, root)
	byFile := map[string][]string{}
	for _, b := range blocks(t, root) {
		if b.info == "sh runnable" {
			byFile[b.file] = append(byFile[b.file], b.text)
		}
	}
	if len(byFile) == 0 {
		t.Fatal(`no block is marked "sh runnable"`)
	}
	for file, texts := range byFile {
		t.Run(file, func(t *testing.T) {
			script := "set -euo pipefail\n" + strings.Join(texts, "\n")
			cmd := exec.Command("bash", "-c", script)
			cmd.Dir = root
			cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "MEDIANET_DOCS_TMP="+t.TempDir())
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("runnable blocks of %s: %v\n%s", file, err, out)
			}
			t.Logf("%s:\n%s", file, out)
		})
	}
}
