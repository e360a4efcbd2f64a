package media_test

import (
	"fmt"
	"os"
	"strings"
)

// docsJanusMarker precedes, in docs/media-servers.md, the code block the
// suite runs Janus on a medianet network with.
const docsJanusMarker = "<!-- test/media runs Janus on medianet with this block -->"

// docsJanusSections returns that block: janus.jcfg's media and nat
// sections as the docs give them.
func docsJanusSections() (string, error) {
	raw, err := os.ReadFile("../../docs/media-servers.md")
	if err != nil {
		return "", err
	}
	_, after, ok := strings.Cut(string(raw), docsJanusMarker)
	if !ok {
		return "", fmt.Errorf("docs/media-servers.md: no %q", docsJanusMarker)
	}
	_, after, ok = strings.Cut(after, "```")
	if !ok {
		return "", fmt.Errorf("docs/media-servers.md: no code block after %q", docsJanusMarker)
	}
	if _, after, ok = strings.Cut(after, "\n"); !ok { // the fence's info string
		return "", fmt.Errorf("docs/media-servers.md: empty block after %q", docsJanusMarker)
	}
	block, _, ok := strings.Cut(after, "```")
	if !ok {
		return "", fmt.Errorf("docs/media-servers.md: unterminated block after %q", docsJanusMarker)
	}
	return block, nil
}
