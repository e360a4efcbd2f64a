package containerdtest

import (
	"bufio"
	"bytes"
	"strings"
)

// Block is a YAML literal block scalar of a manifest ("key: |" or "- |"),
// dedented: what a node receives from a ConfigMap, a container's args or a
// NetworkAttachmentDefinition's spec.config.
type Block struct {
	Key  string // "config", "medianet.conflist", or "-" for a list item
	Text string
}

// Blocks returns the literal block scalars of a YAML manifest, in order. A
// block ends at the first non-empty line indented no deeper than its key;
// no YAML library is needed for the manifests of deploy/kubernetes.
func Blocks(yaml []byte) []Block {
	var out []Block
	var cur *Block
	keyIndent, blockIndent := 0, -1
	var text strings.Builder
	flush := func() {
		if cur != nil {
			cur.Text = text.String()
			out = append(out, *cur)
		}
		cur, blockIndent = nil, -1
		text.Reset()
	}
	sc := bufio.NewScanner(bytes.NewReader(yaml))
	for sc.Scan() {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		indent := len(line) - len(strings.TrimLeft(line, " "))
		if cur != nil {
			if trimmed == "" || indent > keyIndent {
				if blockIndent < 0 && trimmed != "" {
					blockIndent = indent
				}
				if blockIndent >= 0 && len(line) >= blockIndent {
					line = line[blockIndent:]
				}
				text.WriteString(line + "\n")
				continue
			}
			flush()
		}
		if k, ok := strings.CutSuffix(trimmed, "|"); ok {
			k = strings.TrimSpace(k)
			if k == "-" || strings.HasSuffix(k, ":") {
				cur, keyIndent = &Block{Key: strings.TrimSuffix(k, ":")}, indent
			}
		}
	}
	flush()
	return out
}

// MarkdownJSON returns the bodies of the ```json code blocks of a
// Markdown document, in order.
func MarkdownJSON(md []byte) []string {
	var out []string
	var cur *strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(md))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case cur == nil && strings.TrimSpace(line) == "```json":
			cur = &strings.Builder{}
		case cur != nil && strings.TrimSpace(line) == "```":
			out = append(out, cur.String())
			cur = nil
		case cur != nil:
			cur.WriteString(line + "\n")
		}
	}
	return out
}
