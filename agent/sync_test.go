package agent

import (
	"testing"
	"time"

	"github.com/medianet/medianet/metrics/report"
)

// TestKickWait: a kicked sync waits KickDelay, and comes no sooner than
// KickInterval after the last kicked one, however many reports ask.
func TestKickWait(t *testing.T) {
	s := NewSyncer(ConfDirs{}, nil)
	now := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		last time.Time
		want time.Duration
	}{
		{"first kick", time.Time{}, DefaultKickDelay},
		{"just after a kicked sync", now, DefaultKickInterval},
		{"half an interval after", now.Add(-DefaultKickInterval / 2), DefaultKickInterval / 2},
		{"long after", now.Add(-time.Hour), DefaultKickDelay},
	}
	for _, tt := range tests {
		if got := s.kickWait(now, tt.last); got != tt.want {
			t.Errorf("%s: kickWait = %s, want %s", tt.name, got, tt.want)
		}
	}
}

// TestOnReportCoalesces: a flood of reports asking for a sync never
// blocks and leaves one kick pending; reports that do not ask, or name no
// known network, leave none.
func TestOnReportCoalesces(t *testing.T) {
	s := NewSyncer(ConfDirs{}, nil)
	s.OnReport(report.Report{Verb: "DEL", Network: "media"})
	s.OnReport(report.Report{Verb: "DEL", Network: "", Sync: true})
	if len(s.kick) != 0 {
		t.Fatalf("kick pending after reports that ask no sync of a known network")
	}
	for range 100000 {
		s.OnReport(report.Report{Verb: "DEL", Network: "media", Sync: true})
	}
	if len(s.kick) != 1 {
		t.Errorf("%d kicks pending after a flood, want 1", len(s.kick))
	}
}
