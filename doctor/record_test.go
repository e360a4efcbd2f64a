package doctor_test

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/medianet/medianet/doctor"
)

func TestRecordRoundTrip(t *testing.T) {
	dir := t.TempDir()
	if _, ok, err := doctor.ReadRecord(dir, "eth1"); ok || err != nil {
		t.Fatalf("ReadRecord of nothing = %v, %v; want not ok, no error", ok, err)
	}
	now := time.Now().Truncate(time.Second)
	rec := doctor.Record{Report: doctor.Report{Parent: "eth1", VLAN: 7, Link: "eth1.7", Verdict: doctor.Dropped}, Checked: now, ValidUntil: now.Add(time.Minute)}
	if err := doctor.WriteRecord(dir, rec); err != nil {
		t.Fatal(err)
	}
	got, ok, err := doctor.ReadRecord(dir, "eth1.7")
	if err != nil || !ok || got.Report.Verdict != doctor.Dropped || !got.Checked.Equal(now) {
		t.Fatalf("ReadRecord = %+v, %v, %v", got, ok, err)
	}
	entries, _ := os.ReadDir(dir + "/" + doctor.RecordDir)
	if len(entries) != 1 {
		t.Errorf("record dir holds %d files, want 1 (no temporary left)", len(entries))
	}
	for _, link := range []string{"", "../x", ".."} {
		rec.Report.Link = link
		if err := doctor.WriteRecord(dir, rec); !errors.Is(err, doctor.ErrInvalid) {
			t.Errorf("WriteRecord for link %q = %v, want ErrInvalid", link, err)
		}
	}
	if err := os.WriteFile(doctor.RecordPath(dir, "bad"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := doctor.ReadRecord(dir, "bad"); ok || err == nil {
		t.Errorf("ReadRecord of a corrupt file = %v, %v; want an error", ok, err)
	}
}

func TestRecordNotReady(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		verdict doctor.Verdict
		until   time.Duration
		want    bool
	}{
		{doctor.Dropped, time.Minute, true},
		{doctor.NoCarrier, time.Minute, true},
		{doctor.ParentDown, time.Minute, true},
		{doctor.ParentMissing, time.Minute, true},
		{doctor.Dropped, -time.Second, false}, // expired: the agent may be gone
		{doctor.Pass, time.Minute, false},
		{doctor.NoAnswer, time.Minute, false},
		{doctor.MTUMismatch, time.Minute, false},
	} {
		rec := doctor.Record{Report: doctor.Report{Parent: "eth1", Link: "eth1", Verdict: tc.verdict, Reason: "why", Advice: []string{"fix"}},
			Checked: now.Add(-90 * time.Second), ValidUntil: now.Add(tc.until)}
		err := rec.NotReady(now)
		if got := err != nil; got != tc.want {
			t.Errorf("%s valid %v: NotReady = %v, want not ready %v", tc.verdict, tc.until, err, tc.want)
			continue
		}
		if err != nil && (!errors.Is(err, doctor.ErrNotCarrying) || !strings.Contains(err.Error(), "1m30s ago: why") ||
			!strings.Contains(err.Error(), "fix") || !strings.Contains(err.Error(), "medianetctl doctor --parent eth1")) {
			t.Errorf("%s: message %q lacks the age, reason, advice or recheck command", tc.verdict, err)
		}
	}
}
