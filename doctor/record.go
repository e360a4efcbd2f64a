package doctor

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// RecordDir is the folder of a data directory holding the node agent's
// last doctor report per link, as <link>.json: what CNI STATUS reads.
const RecordDir = "doctor"

// ErrNotCarrying: a fresh record says the link does not carry macvlan
// frames (dropped, or the parent missing, down or without carrier).
var ErrNotCarrying = errors.New("the parent does not carry macvlan frames")

// Record is a report kept for readers that must not probe themselves.
// Its writer (the node agent) promises a newer record before ValidUntil;
// an older one says nothing any more (the agent may be gone).
type Record struct {
	Report     Report    `json:"report"`
	Checked    time.Time `json:"checked"`
	ValidUntil time.Time `json:"validUntil"`
}

// RecordPath is where the record of link lives under dataDir.
func RecordPath(dataDir, link string) string {
	return filepath.Join(dataDir, RecordDir, link+".json")
}

// WriteRecord stores rec under dataDir, by rename, so that a reader sees
// the old record or the new one, never a part.
func WriteRecord(dataDir string, rec Record) error {
	link := rec.Report.Link
	if link == "" || strings.ContainsAny(link, "/\x00") || link == "." || link == ".." {
		return fmt.Errorf("doctor: record for link %q: %w", link, ErrInvalid)
	}
	dir := filepath.Join(dataDir, RecordDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("doctor: record dir: %w", err)
	}
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+link+".*")
	if err != nil {
		return fmt.Errorf("doctor: record for %q: %w", link, err)
	}
	defer os.Remove(f.Name()) // after a successful rename, nothing to remove
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("doctor: record for %q: %w", link, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("doctor: record for %q: %w", link, err)
	}
	if err := os.Rename(f.Name(), RecordPath(dataDir, link)); err != nil {
		return fmt.Errorf("doctor: record for %q: %w", link, err)
	}
	return nil
}

// ReadRecord returns the record of link under dataDir; ok is false when
// there is none.
func ReadRecord(dataDir, link string) (rec Record, ok bool, err error) {
	b, err := os.ReadFile(RecordPath(dataDir, link))
	if errors.Is(err, os.ErrNotExist) {
		return Record{}, false, nil
	}
	if err != nil {
		return Record{}, false, fmt.Errorf("doctor: record of %q: %w", link, err)
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return Record{}, false, fmt.Errorf("doctor: record of %q: %w", link, err)
	}
	return rec, true, nil
}

// NotReady returns an error wrapping ErrNotCarrying, with the doctor's
// reason, advice and the record's age, when rec is still valid at now and
// says the link cannot carry macvlan frames; nil otherwise. A silent
// target or an MTU mismatch does not make a link not ready: neither
// proves that frames from new MACs are lost.
func (rec Record) NotReady(now time.Time) error {
	if !now.Before(rec.ValidUntil) {
		return nil
	}
	switch rec.Report.Verdict {
	case Dropped, ParentMissing, ParentDown, NoCarrier:
	default:
		return nil
	}
	msg := fmt.Sprintf("%s (medianet doctor, %s ago: %s)", rec.Report.Verdict, now.Sub(rec.Checked).Round(time.Second), rec.Report.Reason)
	if len(rec.Report.Advice) > 0 {
		msg += "; to change: " + strings.Join(rec.Report.Advice, "; ")
	}
	recheck := "medianetctl doctor --parent " + rec.Report.Parent
	if rec.Report.VLAN != 0 {
		recheck += fmt.Sprintf(" --vlan %d", rec.Report.VLAN)
	}
	return fmt.Errorf("link %s: %w: %s; recheck with %s", rec.Report.Link, ErrNotCarrying, msg, recheck)
}
