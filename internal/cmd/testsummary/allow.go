package main

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"strings"
)

// allowEntry is one line of the allow-list.
type allowEntry struct {
	re     *regexp.Regexp
	reason string
	where  string // file:line, for messages
	used   int    // skips it matched in this run
}

// allowList is the parsed allow-list; the zero value allows nothing.
type allowList struct {
	entries []*allowEntry
}

// parseAllowList reads entries "REGEXP -- reason" from r (named name in
// errors); empty lines and lines starting with # are skipped.
func parseAllowList(name string, r io.Reader) (*allowList, error) {
	var l allowList
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		where := fmt.Sprintf("%s:%d", name, n)
		pattern, reason, ok := strings.Cut(line, " -- ")
		pattern, reason = strings.TrimSpace(pattern), strings.TrimSpace(reason)
		if !ok || pattern == "" || reason == "" {
			return nil, fmt.Errorf("allow-list %s: want \"REGEXP -- why CI cannot provide it\", got %q", where, line)
		}
		re, err := regexp.Compile(pattern)
		if err != nil {
			return nil, fmt.Errorf("allow-list %s: regexp %q: %w", where, pattern, err)
		}
		l.entries = append(l.entries, &allowEntry{re: re, reason: reason, where: where})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("allow-list %s: %w", name, err)
	}
	return &l, nil
}

// match returns the first entry whose regexp matches subject, or nil.
func (l *allowList) match(subject string) *allowEntry {
	if l == nil {
		return nil
	}
	for _, e := range l.entries {
		if e.re.MatchString(subject) {
			e.used++
			return e
		}
	}
	return nil
}

// unused returns the entries that matched no skip.
func (l *allowList) unused() []*allowEntry {
	if l == nil {
		return nil
	}
	var out []*allowEntry
	for _, e := range l.entries {
		if e.used == 0 {
			out = append(out, e)
		}
	}
	return out
}
