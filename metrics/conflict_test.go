package metrics

import (
	"testing"

	"github.com/medianet/medianet/metrics/report"
)

// TestConflictsAndParentState: a plugin's reported conflicts add to the
// network's counter (through the report's checks), and the doctor's
// verdict sets one state of the link to 1, the others to 0.
func TestConflictsAndParentState(t *testing.T) {
	a := newAgent(t, t.TempDir())
	r := report.Report{V: report.Version, Plugin: report.PluginMain, Verb: "ADD", Network: "media", Conflicts: 2}
	if err := report.Check(r); err != nil {
		t.Fatalf("a report with conflicts refused: %v", err)
	}
	a.rec.observePlugin(r)
	a.rec.observePlugin(report.Report{V: report.Version, Plugin: report.PluginMain, Verb: "ADD", Network: "media", Code: 101})
	got := values(t, a, AddressConflicts)
	if v := got["network=media,node=node-a"]; v != 2 {
		t.Errorf("%s = %v, want 2", AddressConflicts, got)
	}
	if v := values(t, a, Operations)["code=101,network=media,node=node-a,operation=ADD,plugin=medianet"]; v != 1 {
		t.Errorf("operations with code 101: %v, want 1 (not \"other\")", v)
	}
	if err := report.Check(report.Report{Plugin: report.PluginMain, Verb: "ADD", Conflicts: report.MaxCount + 1}); err == nil {
		t.Error("a report with more conflicts than MaxCount passed the checks")
	}

	states := []string{"pass", "dropped", "no-answer"}
	a.Recorder().SetParentState("lan0", "dropped", states)
	a.Recorder().SetParentState("lan0", "pass", states)
	ps := values(t, a, ParentState)
	want := map[string]float64{"link=lan0,node=node-a,state=pass": 1, "link=lan0,node=node-a,state=dropped": 0, "link=lan0,node=node-a,state=no-answer": 0}
	for k, v := range want {
		if got, ok := ps[k]; !ok || got != v {
			t.Errorf("%s{%s} = %v (present %v), want %v", ParentState, k, got, ok, v)
		}
	}
}
